"""Sorting the index's columns (cairn.repo.indexsort): the same as sorting them plainly, an id
repeated keeping its first entry, with the columns read given back as they are moved."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.repo import indexsort
from cairn.repo.indexsort import Columns, bucket_bits, sort_unique

# ids that share their leading bytes (a bucket, or the 8 bytes sorted as a number) or not
blob_id = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.builds(
        bytes.__add__,
        st.sampled_from([bytes(8), b"\x80" + bytes(7), b"\xff" * 8, b"\x12\x34" + bytes(6)]),
        st.binary(min_size=24, max_size=24),
    ),
    st.builds(
        bytes.__add__, st.sampled_from([bytes(31), b"\xff" * 31]), st.binary(min_size=1, max_size=1)
    ),
)
row = st.tuples(*[st.integers(0, (1 << 32) - 1)] * 4)


def _columns(entries: list[tuple[bytes, tuple[int, int, int, int]]], mapped: bool) -> Columns:
    ids = np.frombuffer(b"".join(i for i, _ in entries), dtype="S32")
    rows = np.array([r for _, r in entries], dtype="<u4").reshape(-1, 4)
    if not mapped:
        return Columns.wrap(ids, rows)
    c = Columns(len(entries) + 3)  # room to spare, as a segment being filled has
    c.append(ids, rows)
    return c


@settings(max_examples=150, deadline=None)
@given(
    pool=st.lists(blob_id, min_size=1, max_size=40),
    picks=st.lists(st.lists(st.tuples(st.integers(0, 39), row), max_size=60), max_size=6),
    mapped=st.lists(st.booleans(), min_size=6, max_size=6),
    bucket=st.sampled_from([1, 2, 5, 1 << 15]),
    block=st.sampled_from([1, 3, 64, 1 << 16]),
)
def test_sorted_as_plainly_first_entry_kept(
    pool: list[bytes],
    picks: list[list[tuple[int, tuple[int, int, int, int]]]],
    mapped: list[bool],
    bucket: int,
    block: int,
) -> None:
    runs_in = [[(pool[i % len(pool)], r) for i, r in run] for run in picks]
    expected: dict[bytes, tuple[int, int, int, int]] = {}
    for run in runs_in:
        for i, r in run:
            expected.setdefault(i, r)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(indexsort, "_BUCKET", bucket)
        mp.setattr(indexsort, "_BLOCK", block)
        runs = [_columns(run, m) for run, m in zip(runs_in, mapped, strict=False)]
        out = sort_unique(runs)
    assert runs == []
    assert out.size == len(expected)
    ids = out.ids().tobytes()
    got = [ids[k * 32 : k * 32 + 32] for k in range(out.size)]
    assert got == sorted(expected)
    assert [tuple(r) for r in out.rows[: out.size].tolist()] == [expected[i] for i in got]
    # what a lookup does with the result: every key is found where its first id is
    keys = out.keys[: out.size]
    if out.size:
        at = keys.searchsorted(keys)
        assert at.tolist() == [got.index(next(g for g in got if g[:8] == i[:8])) for i in got]


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="no madvise here")
def test_the_columns_read_are_given_back() -> None:
    """Each run's pages go back as its entries are moved: a run reads as zeros after."""
    rng = np.random.default_rng(5)
    n = 51_200  # whole pages of keys, of tails and of rows
    run = Columns(n)
    run.append(
        np.frombuffer(rng.bytes(32 * n), dtype="S32"),
        rng.integers(0, 1 << 32, size=(n, 4), dtype=np.uint64).astype("<u4"),
    )
    before = (run.ids().tobytes(), run.rows.copy())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(indexsort, "_BLOCK", 1000)
        out = sort_unique([run])
    order = np.argsort(np.frombuffer(before[0], dtype="S32"))
    assert out.ids().tobytes() == np.frombuffer(before[0], dtype="S32")[order].tobytes()
    assert (out.rows[: out.size] == before[1][order]).all()
    assert not run.keys.any()  # every page of the run given back
    assert not run.tails.view(np.uint8).any()
    assert not run.rows.any()


def test_a_segment_is_filled_up_to_its_capacity() -> None:
    c = Columns(5)
    ids = np.frombuffer(bytes(range(32)) * 3, dtype="S32")
    c.append(ids, np.arange(12, dtype="<u4").reshape(3, 4))
    assert (c.size, c.room) == (3, 2)
    assert Columns(0).room == 0


def test_buckets_grow_with_the_entries() -> None:
    assert bucket_bits(0) == 0
    assert bucket_bits(30_000) == 0
    assert 2**14 <= 10_000_000 >> bucket_bits(10_000_000) < 2**15
    assert bucket_bits(1 << 40) == 16


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(blob_id, max_size=30))
def test_ids_split_and_joined_again(ids: list[bytes]) -> None:
    """An id's key and tail sort as the id does, and give it back whole."""
    arr = np.frombuffer(b"".join(ids), dtype="S32")
    keys, tails = indexsort.split_ids(arr)
    assert keys.dtype == np.uint64 and tails.dtype == np.dtype("S24")
    assert indexsort.join_ids(keys, tails).tobytes() == b"".join(ids)
    by_parts = sorted(range(len(ids)), key=lambda i: (int(keys[i]), tails[i]))
    assert [ids[i] for i in by_parts] == sorted(ids)
