"""A stream gzipped on several cores: one gzip member whose deflate stream is made of pieces of
about a megabyte, each compressed by itself on a thread at the fastest level, or stored where
the data does not compress, and ended by a sync flush (``cairn.ops.deflate``); the CRC-32 of
the whole combined from the pieces'. What any gzip reader reads (``gzip -d``, ``tar xzf``,
Python's ``gzip`` and ``tarfile``, its stream mode ``"r|gz"`` too).

The writer above it says what the bytes it writes next are (``hint``): the tar stream of a
dump says so file by file, from the blobs' stored form (a blob that zstd did not shrink is
stored as is in the repository); bytes of no known kind are tried on their first 64 KiB.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from cairn.ops.deflate import (
    END,
    GZIP_HEADER,
    PIECE,
    Data,
    InOrder,
    Pieces,
    crc32_combine,
    deflate_piece,
)


class GzipStream:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pieces = Pieces()
        self._kind: bool | None = None
        self._work: InOrder[tuple[bytes, int, int]] = InOrder(self._put)
        self._crc = 0
        self._size = 0
        self._closed = False
        out.write(GZIP_HEADER)

    def hint(self, compressible: bool | None) -> None:
        """Whether the bytes written next compress (None: not known). A change of kind ends
        the piece being gathered if it is large enough to be one (the bytes of a piece are
        all stored or all deflated: as most of them say)."""
        if compressible is not self._kind and len(self._pieces) >= PIECE // 4:
            self._piece(*self._pieces.take())
        self._kind = compressible

    def write(self, data: bytes | memoryview) -> int:
        if data:
            if not isinstance(data, bytes):
                data = bytes(data)  # a view of a buffer its writer may reuse
            self._pieces.add(data, self._kind)
            if self._pieces.full:
                self._piece(*self._pieces.take())
        return len(data)

    def _piece(self, data: Data, kind: bool | None) -> None:
        """Deflates a piece on the pool; one that does not compress is framed here, with its
        CRC-32 (handing it to a thread cost more than it saved: 0.75x of the speed of a tar
        against 0.8x, for incompressible data)."""
        if kind is False:
            self._work.ready(deflate_piece(data, kind))
        else:
            self._work.submit(deflate_piece, data, kind)

    def _put(self, piece: tuple[bytes, int, int]) -> None:
        """One compressed piece, in order (on the writer's thread)."""
        out, crc, n = piece
        self._crc = crc32_combine(self._crc, crc, n) if self._size else crc
        self._size += n
        self._out.write(out)

    def flush(self) -> None:
        pass  # pieces are compressed whole: a flush would only make them smaller

    def close(self) -> None:
        """Writes what is left, the end of the deflate stream and the gzip trailer."""
        if self._closed:
            return
        self._closed = True
        try:
            if len(self._pieces):
                self._piece(*self._pieces.take())
            self._work.finish()
        finally:
            self._work.close()
        self._out.write(END + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        self._out.flush()

    def abort(self) -> None:
        """Stops without writing the end (after a failure)."""
        self._closed = True
        self._work.close()

    def __enter__(self) -> GzipStream:
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
