"""A zip archive written member by member to a stream that cannot seek (a download of a
directory as .zip): the dump's walk and reads (``cairn.ops.dump``) with this in place of the tar.

Each regular file, directory and symbolic link is a zip entry (names as UTF-8, Unix modes, DOS
times). A file whose data compresses (cairn knows from its blobs: zstd shrank them) is deflated
at the fastest level, a megabyte at a time on several cores (``cairn.ops.deflate``); a file that
does not (photos, video, archives) is stored. A file's CRC-32 and sizes follow its data (a data
descriptor, zip64: files over 4 GiB need no size known in advance), and the central directory
ends the archive, zip64 where it has to be.
A zip has no place for owners, FIFOs, device nodes or hard links: those are left out, and
counted; a file with holes is written whole.
"""

from __future__ import annotations

import struct
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from cairn.ops.deflate import (
    END,
    FAST,
    TRIAL,
    Data,
    InOrder,
    Pieces,
    crc32,
    crc32_combine,
    crc_piece,
    deflate_piece,
    level_of,
)

STORED, DEFLATED = 0, 8
ZIP64_LIMIT = 0xFFFFFFFF
UNIX = 3
VERSION = 45  # zip64 (4.5): what a file's entry needs; 2.0 for the rest
UTF8 = 0x800  # general purpose flag: the name is UTF-8
DESCRIPTOR = 0x08  # general purpose flag: CRC-32 and sizes after the data
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_DESCRIPTOR = struct.Struct("<4sLQQ")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR = struct.Struct("<4sLQL")
_END = struct.Struct("<4s4H2LH")


@dataclass
class ZipSummary:
    files: int = 0
    dirs: int = 0
    links: int = 0
    skipped: int = 0  # hard links, FIFOs, devices: a zip cannot hold them


@dataclass
class _Entry:
    name: bytes
    flags: int
    method: int
    date_time: tuple[int, int]  # DOS time, date
    external: int
    descriptor: bool  # sizes and CRC after the data (a file)
    crc: int = 0
    csize: int = 0
    usize: int = 0
    offset: int = 0

    def local(self) -> bytes:
        version = VERSION if self.descriptor else 20
        crc, csize, usize, extra = self.crc, self.csize, self.usize, b""
        if self.descriptor:  # the sizes come later, as zip64 ones
            crc, csize, usize = 0, ZIP64_LIMIT, ZIP64_LIMIT
            extra = struct.pack("<HHQQ", 1, 16, 0, 0)
        dostime, dosdate = self.date_time
        head = _LOCAL.pack(b"PK\x03\x04", version, 0, self.flags, self.method, dostime, dosdate,
                           crc, csize, usize, len(self.name), len(extra))  # fmt: skip
        return head + self.name + extra

    def central(self) -> bytes:
        version = VERSION if self.descriptor else 20
        sixty_four = []
        usize, csize, offset = self.usize, self.csize, self.offset
        if usize >= ZIP64_LIMIT:
            sixty_four.append(usize)
            usize = ZIP64_LIMIT
        if csize >= ZIP64_LIMIT:
            sixty_four.append(csize)
            csize = ZIP64_LIMIT
        if offset >= ZIP64_LIMIT:
            sixty_four.append(offset)
            offset = ZIP64_LIMIT
        extra = b""
        if sixty_four:
            extra = struct.pack(f"<HH{len(sixty_four)}Q", 1, 8 * len(sixty_four), *sixty_four)
        dostime, dosdate = self.date_time
        head = _CENTRAL.pack(b"PK\x01\x02", VERSION, UNIX, version, 0, self.flags, self.method,
                             dostime, dosdate, self.crc, csize, usize, len(self.name), len(extra),
                             0, 0, 0, self.external, offset)  # fmt: skip
        return head + self.name + extra


def _dos(mtime: float) -> tuple[int, int]:
    """A zip entry's DOS time and date: local time, 1980 at the earliest (the format's first)."""
    t = time.localtime(max(mtime, 315532800))
    year = min(max(t.tm_year, 1980), 2107)
    return (t.tm_hour << 11 | t.tm_min << 5 | t.tm_sec // 2,
            (year - 1980) << 9 | t.tm_mon << 5 | t.tm_mday)  # fmt: skip


def _stored(data: Data) -> tuple[object, ...]:
    return ("piece", *crc_piece(data))


def _deflated(data: Data, kind: bool | None) -> tuple[object, ...]:
    return ("piece", *deflate_piece(data, kind))


class ZipStream:
    """The archive the dump writes a directory to, in place of a ``TarStream``: ``add`` takes
    the same tar headers."""

    sparse = False  # a zip has no sparse files: holes are written as their zeros
    compresses = True

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._offset = 0
        self._central: list[bytes] = []
        self._current: _Entry | None = None
        self._work: InOrder[tuple[object, ...]] = InOrder(self._put)
        self.summary = ZipSummary()

    def add(
        self,
        info: tarfile.TarInfo,
        data: Iterable[bytes | memoryview] = (),
        compressible: bool | None = True,
    ) -> None:
        """One member, from its tar header: a directory, a symbolic link, or a regular file
        and its data (``info.size`` bytes; ``compressible``: whether they compress, None if
        not known); anything else is skipped."""
        name = info.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        flags = 0 if name.isascii() else UTF8
        when = _dos(info.mtime)
        if info.isdir():
            entry = _Entry((name.rstrip("/") + "/").encode(), flags, STORED, when,
                           (0o040000 | info.mode & 0o7777) << 16 | 0x10, False)  # fmt: skip
            self._whole(entry, b"")
            self.summary.dirs += 1
        elif info.issym():
            target = info.linkname.encode("utf-8", "surrogateescape")
            entry = _Entry(name.encode(), flags, STORED, when, (0o120000 | 0o777) << 16, False)
            self._whole(entry, target)
            self.summary.links += 1
        elif info.isreg():
            entry = _Entry(name.encode(), flags | DESCRIPTOR, STORED, when,
                           (0o100000 | info.mode & 0o7777) << 16, True)  # fmt: skip
            self._file(entry, info, data, compressible)
            self.summary.files += 1
        else:  # hard links to an earlier member, FIFOs, devices
            for _ in data:
                pass
            self.summary.skipped += 1

    def _whole(self, entry: _Entry, data: bytes) -> None:
        entry.crc, entry.csize, entry.usize = crc32(data), len(data), len(data)
        self._work.ready(("whole", entry, data))

    def _file(
        self,
        entry: _Entry,
        info: tarfile.TarInfo,
        data: Iterable[bytes | memoryview],
        compressible: bool | None,
    ) -> None:
        pending = Pieces()
        started = False
        written = 0
        for part in data:
            if not isinstance(part, bytes):
                part = bytes(part)  # a view of a buffer its writer may reuse
            written += len(part)
            if written > info.size:
                raise OSError(f"{info.name}: more data than its size of {info.size} bytes")
            pending.add(part, compressible)
            if pending.full:
                piece, kind = pending.take()
                if not started:
                    started = self._start(entry, piece, kind)
                self._piece(entry, piece, kind)
        if written != info.size:
            raise OSError(f"{info.name}: unexpected end of data ({written} of {info.size} bytes)")
        if len(pending):
            piece, kind = pending.take()
            if not started:
                started = self._start(entry, piece, kind)
            self._piece(entry, piece, kind)
        if not started:
            self._start(entry, [], True)
        self._work.ready(("end", entry))

    def _start(self, entry: _Entry, first: Data, kind: bool | None) -> bool:
        """Chooses the entry's method by its first piece, and puts its header out."""
        if any(first) and level_of(first, kind) == FAST:
            entry.method = DEFLATED
        self._work.ready(("head", entry))
        return True

    def _piece(self, entry: _Entry, data: Data, kind: bool | None) -> None:
        """Deflates a piece on the pool (a small one here); a stored piece's CRC-32 is taken
        here: handing it to a thread cost more than it saved (a zip of incompressible data
        streamed at about 0.7x of the speed of a tar with its CRCs on the pool, 0.85x
        without)."""
        if entry.method != DEFLATED:
            self._work.ready(_stored(data))
        elif sum(len(part) for part in data) <= TRIAL:
            self._work.ready(_deflated(data, kind))
        else:
            self._work.submit(_deflated, data, kind)

    def _put(self, item: tuple[object, ...]) -> None:
        """Writes one result, in order (on the thread that adds the members)."""
        tag = item[0]
        if tag == "piece":
            _, out, crc, n = item
            assert isinstance(crc, int) and isinstance(n, int) and self._current is not None
            e = self._current
            e.crc = crc32_combine(e.crc, crc, n) if e.usize else crc
            e.usize += n
            if isinstance(out, bytes):
                out = [out]
            assert isinstance(out, list)
            for part in out:
                e.csize += len(part)
                self._write(part)
            return
        entry = item[1]
        assert isinstance(entry, _Entry)
        if tag == "head":
            entry.offset = self._offset
            self._current = entry
            self._write(entry.local())
        elif tag == "end":
            if entry.method == DEFLATED:
                self._write(END)
                entry.csize += len(END)
            self._write(_DESCRIPTOR.pack(b"PK\x07\x08", entry.crc, entry.csize, entry.usize))
            self._central.append(entry.central())
            self._current = None
        else:  # "whole": a directory or a link, its data known
            data = item[2]
            assert isinstance(data, bytes)
            entry.offset = self._offset
            self._write(entry.local())
            self._write(data)
            self._central.append(entry.central())

    def _write(self, data: bytes | memoryview) -> None:
        if data:
            self._out.write(data)
            self._offset += len(data)

    def close(self) -> None:
        """Writes what is left, then the central directory and the end records."""
        try:
            self._work.finish()
        finally:
            self._work.close()
        start = self._offset
        for record in self._central:
            self._write(record)
        count, size = len(self._central), self._offset - start
        if count >= 0xFFFF or size >= ZIP64_LIMIT or start >= ZIP64_LIMIT:
            end64 = self._offset
            self._write(_END64.pack(b"PK\x06\x06", _END64.size - 12, VERSION, VERSION, 0, 0,
                                    count, count, size, start))  # fmt: skip
            self._write(_LOCATOR.pack(b"PK\x06\x07", 0, end64, 1))
        self._write(_END.pack(b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                              min(size, ZIP64_LIMIT), min(start, ZIP64_LIMIT), 0))  # fmt: skip
        self._out.flush()

    def abort(self) -> None:
        """Stops without the end (after a failure): the pool's work dropped."""
        self._work.close()
