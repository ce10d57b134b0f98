"""Content-defined chunking with FastCDC (pyfastcdc), keyed by the repository's secret seed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc import FastCDC

from cairn.repo.config import ChunkerParams


class Chunker:
    def __init__(self, params: ChunkerParams) -> None:
        self.params = params
        self._cdc = FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalization,
            seed=params.seed,
        )

    def chunks(self, stream: BinaryIO, size_hint: int | None = None) -> Iterator[memoryview]:
        """Chunks of a stream. Each view is only valid until the next one is produced.

        pyfastcdc's stream chunker allocates and zero-fills a buffer of twice the maximum chunk
        size on every call, which would dominate the cost of small files; a stream that fits in
        one maximum-size chunk is read whole and cut in memory instead (same cut points).
        ``size_hint`` (the expected size of a file) only sizes the first read."""
        want = self.params.max_size + 1
        if size_hint is not None:
            want = min(want, size_hint + 1)  # a small file: no 4 MiB read buffer for it
        head = _read_up_to(stream, want)
        if len(head) < want:
            for chunk in self._cdc.cut_buf(head):
                yield chunk.data
            return
        for chunk in self._cdc.cut_stream(_Prefixed(head, stream)):
            yield chunk.data

    def chunks_of(self, data: bytes | memoryview) -> Iterator[memoryview]:
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        b = stream.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def,override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._stream.readinto(b)  # type: ignore[attr-defined,no-any-return]
