"""The in-memory blob index: what goes in comes back, before and after entries are merged into
the sorted arrays, and through an encoded index object."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.repo import index as index_module
from cairn.repo.index import BlobIndex, PackInfo, PackRecord, decode_index, encode_index
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


@settings(max_examples=60, deadline=None)
@given(
    packs=st.lists(pack, max_size=12),
    merge_min=st.sampled_from([1, 3, 1 << 16]),
    loading=st.booleans(),
)
def test_entries_come_back_merged_or_not(
    packs: list[PackRecord], merge_min: int, loading: bool
) -> None:
    """Packs added one by one, or all at once as a repository's index is loaded (blobs not
    looked up one at a time: repeated ones dropped as they are merged, and by ``loaded``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_module, "_MERGE_MIN", merge_min)
        index = BlobIndex()
        expected: dict[bytes, tuple[bytes, int, int, int]] = {}
        added: set[bytes] = set()
        for record in decode_index(encode_index(packs)):
            index.add_pack(record, loading=loading)
            assert index.has_pack(record.info.id)
            if record.info.id in added:
                continue  # a pack is indexed once
            added.add(record.info.id)
            for b in record.blobs:
                # the first pack that holds a blob is where the index finds it
                expected.setdefault(b.id, (record.info.id, b.offset, b.length, b.raw_length))
        if loading:
            index.loaded()
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
    absent = b"\xff" * 31 + b"\xfe"
    if absent not in expected:
        assert absent not in index
        assert index.get(absent) is None
    # looked up all at once: the same answers
    asked = [*expected, absent, b"\0" * 32, *(b[:31] + b"\x01" for b in expected)]
    assert index.contains_all(asked) == [b in index for b in asked]
