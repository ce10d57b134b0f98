"""The chunker cuts exactly where FastCDC cuts, whatever the input size and however it is read,
and its cut points depend on the repository's secret seed."""

from __future__ import annotations

import io
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from pyfastcdc import FastCDC

from cairn.model.chunker import Chunker
from cairn.repo.config import ChunkerParams

SMALL = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536, seed=12345)


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def,override]
        n = min(len(b), self._step, len(self._data))
        b[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def reference(params: ChunkerParams, data: bytes) -> list[bytes]:
    cdc = FastCDC(
        params.avg_size,
        min_size=params.min_size,
        max_size=params.max_size,
        normalized_chunking=params.normalization,
        seed=params.seed,
    )
    return [bytes(c.data) for c in cdc.cut_buf(data)]


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 300_000),
    step=st.sampled_from([1000, 4096, 65536, 1 << 20]),
    seed=st.integers(1, 2**63 - 1),
)
def test_stream_chunks_match_fastcdc(size, step, seed):
    params = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536, seed=seed)
    data = os.urandom(size)
    got = [bytes(c) for c in Chunker(params).chunks(Trickle(data, step))]
    assert got == reference(params, data)
    assert b"".join(got) == data


def test_default_parameters_around_the_small_file_threshold():
    params = ChunkerParams.random()
    for size in (
        0,
        1,
        params.min_size,
        params.max_size,
        params.max_size + 1,
        3 * params.max_size + 7,
    ):
        data = os.urandom(size)
        got = [bytes(c) for c in Chunker(params).chunks(io.BytesIO(data))]
        assert got == reference(params, data), size


def test_cut_points_depend_on_the_seed():
    data = os.urandom(2 << 20)
    a = [len(c) for c in Chunker(SMALL).chunks_of(data)]
    b = [len(c) for c in Chunker(ChunkerParams(4096, 16384, 65536, seed=999)).chunks_of(data)]
    assert a != b


def test_size_hints_never_change_the_cut_points():
    params = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536, seed=77)
    for size in (0, 10, 4096, 65535, 65536, 65537, 300_000):
        data = os.urandom(size)
        for hint in (0, size // 2, size, size + 10, 10 * size + 1):
            got = [bytes(c) for c in Chunker(params).chunks(io.BytesIO(data), hint)]
            assert got == reference(params, data), (size, hint)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 400_000), min_size=1, max_size=6),
    text=st.booleans(),
    seed=st.integers(1, 2**63 - 1),
)
def test_one_chunker_reused_across_files_read_from_descriptors(tmp_path_factory, sizes, text, seed):
    """The chunker's buffer is reused from file to file; reading from a descriptor with the
    file's size as the hint cuts exactly as FastCDC does on the whole file."""
    params = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536, seed=seed)
    chunker = Chunker(params, read_size=20_000)
    d = tmp_path_factory.mktemp("files")
    for i, size in enumerate(sizes):
        # low-entropy content has content-defined cut points, random content mostly max-size cuts
        data = (b"line %d of a log\n" * (size // 10 + 1))[:size] if text else os.urandom(size)
        path = d / f"f{i}"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            got = [bytes(c) for c in chunker.chunks(fd, size)]
        finally:
            os.close(fd)
        assert got == reference(params, data)
