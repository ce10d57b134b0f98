"""A POSIX (PAX) tar stream written straight to its output, member by member.

tarfile writes the headers (``TarInfo.tobuf``); this writes them, and each member's data as it
comes, the way tarfile's stream mode (``"w|"``) would: the data padded to a 512-byte block, two
zero blocks at the end and zeros up to a whole 10 KiB record. tarfile's own stream mode is not
used because it keeps every member's ``TarInfo`` until the archive is closed (memory that grows
with the number of entries: a dump of millions of files), and writes through a buffer it copies
again after every record, so a member's 1 MiB of data cost about 50 MiB of copies into fresh
memory. Here the data is copied once, into the output.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from typing import BinaryIO

_ZEROS = bytes(tarfile.RECORDSIZE)


class TarStream:
    def __init__(
        self, out: BinaryIO, encoding: str = "utf-8", errors: str = "surrogateescape"
    ) -> None:
        """``encoding``, ``errors``: how the headers' names are encoded (as tarfile's)."""
        self._out = out
        self._encoding = encoding
        self._errors = errors
        self._offset = 0
        self._hint = getattr(out, "hint", None)  # an output that compresses: GzipStream
        self.compresses = self._hint is not None

    sparse = True  # a file with holes may be written as a sparse member

    def add(
        self,
        info: tarfile.TarInfo,
        data: Iterable[bytes | memoryview] = (),
        compressible: bool | None = True,
    ) -> None:
        """One member: its header, then ``data``, which must be ``info.size`` bytes in all
        (none for a member without data: a directory, a link). ``compressible``: whether the
        data compresses (None: not known), told to an output that compresses."""
        if self._hint is not None:
            self._hint(True)
        self._write(info.tobuf(tarfile.PAX_FORMAT, self._encoding, self._errors))
        if self._hint is not None and info.size:
            self._hint(compressible)
        written = 0
        for block in data:
            written += len(block)
            if written > info.size:
                raise OSError(f"{info.name}: more data than its size of {info.size} bytes")
            self._write(block)
        if written != info.size:
            raise OSError(f"{info.name}: unexpected end of data ({written} of {info.size} bytes)")
        if self._hint is not None and info.size:
            self._hint(True)
        self._write(_ZEROS[: -written % tarfile.BLOCKSIZE])

    def close(self) -> None:
        """The end of the archive: two zero blocks, then zeros to a whole record."""
        self._write(_ZEROS[: 2 * tarfile.BLOCKSIZE])
        self._write(_ZEROS[: -self._offset % tarfile.RECORDSIZE])
        self._out.flush()

    def _write(self, data: bytes | memoryview) -> None:
        if data:
            self._out.write(data)
            self._offset += len(data)
