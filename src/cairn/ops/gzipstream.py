"""A stream gzipped on several cores: a sequence of gzip members (``cairn.ops.deflate``), each
of about a megabyte, compressed at the fastest level, or stored where the data does not
compress.

The writer above it says what the bytes it writes next are (``hint``): the tar stream of a
dump says so file by file, from the blobs' stored form (a blob that zstd did not shrink is
stored as is in the repository); bytes of no known kind are tried on their first 64 KiB.
The output is a valid gzip stream (RFC 1952 allows members back to back) that ``gzip -d``,
``tar xzf``, ``zcat`` and Python's ``gzip`` and ``tarfile.open(mode="r:gz")`` read whole;
tarfile's stream mode ``"r|gz"`` reads only the first member.
"""

from __future__ import annotations

from typing import BinaryIO

from cairn.ops.deflate import InOrder, Pieces, gzip_member


class GzipStream:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pieces = Pieces()
        self._kind: bool | None = None
        self._work: InOrder[bytes] = InOrder(self._out.write)
        self._closed = False
        self._members = 0

    def hint(self, compressible: bool | None) -> None:
        """Whether the bytes written next compress (None: not known)."""
        self._kind = compressible

    def write(self, data: bytes | memoryview) -> int:
        if data:
            if not isinstance(data, bytes):
                data = bytes(data)  # a view of a buffer its writer may reuse
            self._pieces.add(data, self._kind)
            if self._pieces.full:
                self._members += 1
                self._work.submit(gzip_member, *self._pieces.take())
        return len(data)

    def flush(self) -> None:
        pass  # members are written whole: a flush would only make them smaller

    def close(self) -> None:
        """Writes what is left (at least one member, so an empty stream is valid gzip)."""
        if self._closed:
            return
        self._closed = True
        try:
            if len(self._pieces) or not self._members:
                data, kind = self._pieces.take() if len(self._pieces) else ([b""], True)
                self._work.submit(gzip_member, data, kind)
            self._work.finish()
        finally:
            self._work.close()
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
