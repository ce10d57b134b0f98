"""Content-defined chunking with FastCDC (pyfastcdc), keyed by the repository's secret seed."""

from __future__ import annotations

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

    def chunks(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Chunks of a stream. Each view is only valid until the next one is produced."""
        for chunk in self._cdc.cut_stream(stream):
            yield chunk.data

    def chunks_of(self, data: bytes | memoryview) -> Iterator[memoryview]:
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data
