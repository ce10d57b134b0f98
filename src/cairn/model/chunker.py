"""Content-defined chunking with FastCDC (pyfastcdc), keyed by the repository's secret seed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc import FastCDC

from cairn.core.memory import lazy_buffer
from cairn.repo.config import ChunkerParams

READ_SIZE = 1 << 20


class Chunker:
    """Cuts streams into chunks, reading into one buffer that it keeps and reuses.

    pyfastcdc's own stream chunker allocates and zero-fills a new buffer of twice the maximum
    chunk size for every stream; for a backup that is a fresh 8 MiB (and as many page faults)
    per file. Here every read goes into the same buffer and FastCDC cuts it in place: a cut is
    final once the maximum chunk size is in the buffer after its start (FastCDC never looks
    further), so the cut points are exactly those of the whole stream. Not thread-safe: one
    chunker per thread."""

    def __init__(self, params: ChunkerParams, read_size: int = READ_SIZE) -> None:
        self.params = params
        self._cdc = FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalization,
            seed=params.seed,
        )
        self._capacity = params.max_size + read_size
        self._buf: memoryview | None = None

    def chunks(self, stream: BinaryIO | int, size_hint: int | None = None) -> Iterator[memoryview]:
        """Chunks of a stream (a file object or a file descriptor). Each view is only valid
        until the next one is produced.

        ``size_hint``, the size of a regular file, lets a small one be read in one call: a read
        that ends exactly there is taken as the end (a file that grew meanwhile is caught by the
        caller's check of its size after reading)."""
        if self._buf is None:
            self._buf = lazy_buffer(self._capacity)  # pages are touched only as they are used
        view = memoryview(self._buf)
        try:
            yield from self._cut(stream, view, size_hint)
        finally:
            view.release()

    def _cut(
        self, stream: BinaryIO | int, view: memoryview, size_hint: int | None
    ) -> Iterator[memoryview]:
        max_size = self.params.max_size
        filled, eof, total = 0, False, 0
        want = self._capacity if size_hint is None else min(self._capacity, size_hint + 1)
        while not eof:
            while filled < want:
                n = _readinto(stream, view[filled:want])
                filled += n
                total += n
                if not n or total == size_hint:
                    eof = True
                    break
            want = self._capacity
            start = 0
            for chunk in self._cdc.cut_buf(view[:filled]):
                if not eof and filled - chunk.offset < max_size:
                    break  # FastCDC might cut this one elsewhere with more data behind it
                yield chunk.data
                start = chunk.offset + chunk.length
            rest = filled - start
            if rest and start:
                view[:rest] = view[start:filled]
            filled = rest

    def chunks_of(self, data: bytes | memoryview) -> Iterator[memoryview]:
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data


def _readinto(stream: BinaryIO | int, into: memoryview) -> int:
    if isinstance(stream, int):
        return os.readv(stream, [into])
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return int(readinto(into) or 0)
    data = stream.read(len(into))
    into[: len(data)] = data
    return len(data)
