"""The in-memory blob index: what goes in comes back, before and after entries are merged into
the sorted arrays, and through an encoded index object."""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.repo import index as index_module
from cairn.repo import indexsort
from cairn.repo.index import (
    BlobIndex,
    PackColumns,
    PackInfo,
    PackRecord,
    decode_index,
    encode_index,
)
from cairn.repo.pack import BlobRef

U32 = st.integers(0, (1 << 32) - 1)
blob = st.builds(BlobRef, st.binary(min_size=32, max_size=32), U32, U32, U32)
pack = st.builds(
    PackRecord,
    st.builds(
        PackInfo,
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
        st.sampled_from([0, 1]),
    ),
    st.lists(blob, max_size=20),
)


def _assert_finds(index: BlobIndex, expected: dict[bytes, tuple[bytes, int, int, int]]) -> None:
    """``index`` holds exactly ``expected``: blob id -> (pack id, offset, length, raw length)."""
    assert len(index) == len(expected)
    assert sorted(index.blob_ids()) == sorted(expected)
    for blob_id, (pack_id, offset, length, raw) in expected.items():
        assert blob_id in index
        found = index.get(blob_id)
        assert found is not None
        assert (found.pack.id, found.offset, found.length, found.raw_length) == (
            pack_id,
            offset,
            length,
            raw,
        )


@settings(max_examples=60, deadline=None)
@given(packs=st.lists(pack, max_size=12), merge_min=st.sampled_from([1, 3, 1 << 16]))
def test_entries_come_back_merged_or_not(packs: list[PackRecord], merge_min: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_module, "_MERGE_MIN", merge_min)
        index = BlobIndex()
        expected: dict[bytes, tuple[bytes, int, int, int]] = {}
        added: set[bytes] = set()
        for record in decode_index(encode_index(packs)):
            index.add_pack(record)
            assert index.has_pack(record.info.id)
            if record.info.id in added:
                continue  # a pack is indexed once
            added.add(record.info.id)
            for b in record.blobs:
                # the first pack that holds a blob is where the index finds it
                expected.setdefault(b.id, (record.info.id, b.offset, b.length, b.raw_length))
    _assert_finds(index, expected)
    absent = b"\xff" * 31 + b"\xfe"
    if absent not in expected:
        assert absent not in index
        assert index.get(absent) is None
    # looked up all at once: the same answers
    asked = [*expected, absent, b"\0" * 32, *(b[:31] + b"\x01" for b in expected)]
    assert index.contains_all(asked) == [b in index for b in asked]


def _expected(objects: list[list[PackRecord]]) -> dict[bytes, tuple[bytes, int, int, int]]:
    """blob id -> (pack id, offset, length, raw length) of the first pack added that holds it;
    a pack added again counts once."""
    out: dict[bytes, tuple[bytes, int, int, int]] = {}
    seen: set[bytes] = set()
    for records in objects:
        for r in records:
            if r.info.id in seen:
                continue
            seen.add(r.info.id)
            for b in r.blobs:
                out.setdefault(b.id, (r.info.id, b.offset, b.length, b.raw_length))
    return out


@settings(max_examples=80, deadline=None)
@given(
    objects=st.lists(st.lists(pack, max_size=5), max_size=8),
    columns=st.lists(st.booleans(), min_size=8, max_size=8),
    merge_min=st.sampled_from([1, 3, 1 << 16]),
    small=st.booleans(),
    data=st.data(),
)
def test_columns_and_records_index_alike(
    objects: list[list[PackRecord]],
    columns: list[bool],
    merge_min: int,
    small: bool,
    data: st.DataObject,
) -> None:
    """Index objects added as columns (how the index is loaded) or pack by pack (how a backup
    adds its packs), in any mix, index what ``add_pack`` alone would: the first pack holding a
    blob wins, a pack repeated counts once. ``small``: the columns waiting to be sorted in
    fill several segments, and the sort makes many buckets and moves a few entries at once."""
    # packs repeated from one object to another, and blobs shared between packs
    packs = [r for records in objects for r in records]
    if packs:
        for records in objects:
            if records and data.draw(st.booleans()):
                records.append(data.draw(st.sampled_from(packs)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_module, "_MERGE_MIN", merge_min)
        if small:
            mp.setattr(index_module, "SEGMENT", 7)
            mp.setattr(index_module, "_APPEND_BLOBS", 2)
            mp.setattr(indexsort, "_BUCKET", 2)
            mp.setattr(indexsort, "_BLOCK", 5)
        index = BlobIndex()
        for records, as_columns in zip(objects, columns, strict=False):
            encoded = encode_index(records)
            if as_columns:
                index.add_columns(index_module.decode_index_columns(encoded))
            else:
                for r in decode_index(encoded):
                    index.add_pack(r)
        expected = _expected(objects)
        # asked first, while packs added as columns may still wait to be merged
        asked = [*expected, b"\xfe" * 32]
        assert index.contains_all(asked) == [b in expected for b in asked]
        _assert_finds(index, expected)


@settings(max_examples=40, deadline=None)
@given(packs=st.lists(pack, max_size=12))
def test_columns_give_back_the_records(packs: list[PackRecord]) -> None:
    encoded = encode_index(packs)
    columns = index_module.decode_index_columns(encoded)
    assert [c.record() for c in columns] == packs
    assert decode_index(encoded) == packs


@given(st.lists(st.tuples(pack, st.sampled_from(["record", "columns", "encoded"])), max_size=6))
def test_an_index_object_is_the_maps_messagepack_however_its_packs_come(
    packs: list[tuple[PackRecord, str]],
) -> None:
    """The bytes of docs/format.md's index object, whether a pack comes as a record, as
    columns, or as columns with its entry encoded already (a pack the reading process sealed)."""
    plain = msgpack.packb(
        {
            "version": index_module.INDEX_VERSION,
            "packs": [
                {
                    "id": p.info.id,
                    "salt": p.info.salt,
                    "type": p.info.blob_type,
                    "blobs": [list(b) for b in p.blobs],
                }
                for p, _ in packs
            ],
        }
    )
    given_as = [
        p if how == "record" else PackColumns.of(p, encoded=how == "encoded") for p, how in packs
    ]
    assert encode_index(given_as) == plain
    assert decode_index(plain) == [p for p, _ in packs]


def test_many_blobs_are_merged_once_in_arrays() -> None:
    """A loaded index of many blobs goes into the sorted arrays, duplicates left out."""
    shared = [BlobRef(bytes([7]) * 32, 1, 2, 3)]
    records = [
        PackRecord(
            PackInfo(i.to_bytes(32, "big"), bytes(32), 0),
            [BlobRef((i * 1000 + k).to_bytes(32, "big"), k, 10, 9) for k in range(1000)] + shared,
        )
        for i in range(80)
    ]
    index = BlobIndex()
    for start in range(0, 80, 20):
        index.add_columns(index_module.decode_index_columns(encode_index(records[start:][:20])))
    assert len(index) == 80 * 1000 + 1
    assert index.nbytes() == 48 * (80 * 1000 + 1)  # all merged, nothing left in the dict
    found = index.get(bytes([7]) * 32)
    assert found is not None and found.pack.id == (0).to_bytes(32, "big")
    assert index.get((79_999).to_bytes(32, "big")) is not None


def test_an_index_whose_merge_failed_answers_no_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge that fails midway (out of memory) has given back what it was sorting: every
    later lookup fails too, rather than call a blob of the repository absent."""
    records = [
        PackRecord(
            PackInfo(i.to_bytes(32, "big"), bytes(32), 0),
            [BlobRef((i * 1000 + k).to_bytes(32, "big"), k, 10, 9) for k in range(1000)],
        )
        for i in range(80)
    ]
    index = BlobIndex()
    index.add_columns(index_module.decode_index_columns(encode_index(records)))

    def out_of_memory(runs):  # type: ignore[no-untyped-def]
        raise MemoryError

    monkeypatch.setattr(index_module, "sort_unique", out_of_memory)
    known = (79_005).to_bytes(32, "big")  # in a pack past the dict: sorted in by a lookup
    with pytest.raises(MemoryError):
        _ = known in index
    for lookup in (
        lambda: known in index,
        lambda: index.get(known),
        lambda: index.contains_all([known] * 10),
        lambda: len(index),
        lambda: list(index.blob_ids()),
    ):
        with pytest.raises(index_module.IndexLost):
            lookup()


@pytest.mark.parametrize(
    "blob",
    [
        [b"x" * 31, 1, 2, 3],  # a short id
        [b"x" * 32, -1, 2, 3],  # a negative offset
        [b"x" * 32, 1, 1 << 32, 3],  # a length past 32 bits
        [b"x" * 32, 1, 2.0, 3],  # not an integer
        [b"x" * 32, True, 2, 3],  # a boolean is not an integer here
        [b"x" * 32, 1, 2],  # a field missing
        [b"x" * 32, 1, 2, 3, 4],  # one too many
        ["x" * 32, 1, 2, 3],  # an id that is text
        b"x" * 32,  # not a list
    ],
)
def test_a_malformed_blob_entry_is_refused(blob: object) -> None:
    import msgpack

    doc = {
        "version": 1,
        "packs": [{"id": b"p" * 32, "salt": b"s" * 32, "type": 0, "blobs": [blob]}],
    }
    with pytest.raises(ValueError, match="bad blob entry"):
        index_module.decode_index_columns(msgpack.packb(doc))


@settings(max_examples=40, deadline=None)
@given(packs=st.lists(pack, max_size=12))
def test_pack_records_are_made_from_columns_when_asked(packs: list[PackRecord]) -> None:
    """What check keeps of the index (a pack's columns, its record made when asked) gives the
    records an index object holds, the first of each pack id."""
    columns: dict[bytes, index_module.PackColumns] = {}
    for c in index_module.decode_index_columns(encode_index(packs)):
        columns.setdefault(c.info.id, c)
    expected: dict[bytes, PackRecord] = {}
    for r in packs:
        expected.setdefault(r.info.id, r)
    records = index_module.PackRecords(columns)
    assert len(records) == len(expected)
    assert dict(records.items()) == expected
    assert all(p in records for p in expected)
    assert b"\xee" * 32 not in records or b"\xee" * 32 in expected
    assert records.get(b"\xee" * 32) == expected.get(b"\xee" * 32)


@pytest.mark.parametrize("command", ["check", "prune"])
def test_check_and_prune_index_as_loading_does(tmp_path, run_cli, command) -> None:  # type: ignore[no-untyped-def]
    """check and prune read the index as columns: the packs they go by are the first of each
    pack id of every index object, and their in-memory index finds each blob where loading the
    index does."""
    import os

    from cairn.ops.check import Checker
    from cairn.ops.progress import NullProgress
    from cairn.ops.prune import plan
    from tests.craft import create_repo, open_repo

    repo_path = create_repo(tmp_path / "repo", pack_size=64 << 10)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i}.bin").write_bytes(os.urandom(20_000 + i))
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    writer = open_repo(repo_path)
    first = next(r for _, recs in writer.read_index_objects() for r in recs)
    # another index object listing a pack again, with other places: the first listed counts
    moved = PackRecord(first.info, [b._replace(offset=b.offset + 1) for b in first.blobs])
    writer.write_index([moved])
    loaded = open_repo(repo_path)
    records: dict[bytes, PackRecord] = {}
    for _, recs in loaded.read_index_objects():
        for r in recs:
            records.setdefault(r.info.id, r)
    repo = open_repo(repo_path, load_index=False)
    if command == "check":
        kept, names = Checker(repo, NullProgress())._index()
    else:
        kept, names = plan.read_index(repo)
    assert len(names) == 2
    assert dict(kept.items()) == records
    assert sorted(repo.index.blob_ids()) == sorted(loaded.index.blob_ids())
    for blob_id in loaded.index.blob_ids():
        assert repo.index.get(blob_id) == loaded.index.get(blob_id)


def test_many_packs_at_once_are_copied_a_few_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packs added in one call (check adds every pack of the index at once) are copied into
    the columns waiting to be sorted in a batch at a time, not all joined at once."""
    records = [
        PackRecord(
            PackInfo(i.to_bytes(32, "big"), bytes(32), 0),
            [BlobRef((i * 100 + k).to_bytes(32, "little"), k, 10, 9) for k in range(100)],
        )
        for i in range(2000)
    ]
    batches: list[int] = []
    real = BlobIndex._append

    def append(self: BlobIndex, packs: list[tuple[int, index_module.PackColumns]]) -> None:
        batches.append(sum(len(c) for _, c in packs))
        real(self, packs)

    monkeypatch.setattr(BlobIndex, "_append", append)
    index = BlobIndex()
    index.add_columns(index_module.decode_index_columns(encode_index(records)))
    assert len(index) == 200_000
    assert len(batches) > 2  # the first blobs went to the dict, then batches
    assert max(batches) <= index_module._APPEND_BLOBS + 100
    found = index.get((123 * 100 + 7).to_bytes(32, "little"))
    assert found is not None and found.pack.id == (123).to_bytes(32, "big") and found.offset == 7


@settings(max_examples=60, deadline=None)
@given(
    heads=st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=3),
    tails=st.lists(st.binary(min_size=24, max_size=24), min_size=2, max_size=12, unique=True),
    data=st.data(),
)
def test_lookups_at_once_tell_ids_that_share_their_leading_bytes(
    heads: list[bytes], tails: list[bytes], data: st.DataObject
) -> None:
    """Many ids with the same leading 8 bytes (what the batch lookup searches first): each is
    found or not as it is in the index, whichever of its neighbours the search lands on."""
    ids = sorted({h + t for h in heads for t in tails})
    held = data.draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
    index = BlobIndex()
    info = PackInfo(b"p" * 32, b"s" * 32, 0)
    index.add_pack(PackRecord(info, [BlobRef(b, 0, 1, 1) for b in held]))
    index._merge()  # the sorted arrays, not the dict of entries added since
    asked = [*ids, *(b"\xff" * 8 + t for t in tails), *ids[::-1]]
    assert index.contains_all(asked) == [b in set(held) for b in asked]


def test_batch_lookups_hold_no_more_than_48_bytes_a_blob() -> None:
    """A backup's lookups at once search the ids' leading 8 bytes as integers; those are the
    index's own column of keys, not a copy of them beside the ids: 48 bytes a blob in all."""
    import numpy as np

    rng = random.Random(4)
    ids = [rng.randbytes(32) for _ in range(70_000)]
    index = BlobIndex()
    for p in range(0, len(ids), 1000):
        info = PackInfo(rng.randbytes(32), rng.randbytes(32), 0)
        index.add_pack(PackRecord(info, [BlobRef(b, 0, 1, 1) for b in ids[p : p + 1000]]))
    index._merge()
    asked = ids[::7] + [rng.randbytes(32) for _ in range(1000)]
    assert index.contains_all(asked) == [True] * len(ids[::7]) + [False] * 1000
    held = sum(a.nbytes for a in vars(index).values() if isinstance(a, np.ndarray))
    assert held == index.nbytes() == 48 * len(ids)
