"""A prune plans from the index's columns (``make_plan``, ``Tally``): the same plan as a plain
walk over every pack's record, blob by blob, without an object per blob of the packs it keeps;
the used blobs are marks in the in-memory index (``UsedBlobs``)."""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.ops.prune import PruneOptions, make_plan, plan_prune
from cairn.ops.prune import plan as plan_module
from cairn.ops.prune import tally as tally_module
from cairn.ops.usage import UsedBlobs
from cairn.repo import index as index_module
from cairn.repo import layout
from cairn.repo.index import BlobIndex, PackColumns, PackInfo, PackRecord, PackRecords
from cairn.repo.pack import BlobRef


@dataclass
class Reference:
    """The plan's packs by id, and what the report counts of the blobs."""

    keep: list[bytes]
    repack: list[tuple[bytes, list[BlobRef]]]
    delete: list[bytes]
    unused: dict[bytes, int]
    missing: set[bytes]
    unused_bytes_kept: int
    blobs_removed: int


def reference_plan(
    records: dict[bytes, PackRecord], stored: dict[str, int], used: set[bytes], o: PruneOptions
) -> Reference:
    """The plan as a prune made it from records and a set of used ids, blob by blob."""
    present = {p: r for p, r in records.items() if layout.pack_name(p.hex()) in stored}
    sizes = {p: stored[layout.pack_name(p.hex())] for p in present}

    def used_share(r: PackRecord) -> float:
        total = sum(b.length for b in r.blobs) or 1
        return sum(b.length for b in r.blobs if b.id in used) / total

    home: dict[bytes, bytes] = {}
    for record in sorted(present.values(), key=used_share, reverse=True):
        for b in record.blobs:
            if b.id in used and b.id not in home:
                home[b.id] = record.info.id
    out = Reference([], [], [], {}, used - home.keys(), 0, 0)
    budget = o.max_repack_bytes
    for pack_id, record in sorted(present.items()):
        kept = [b for b in record.blobs if home.get(b.id) == pack_id]
        size = sizes[pack_id]
        unused = sum(b.length for b in record.blobs if home.get(b.id) != pack_id) if kept else size
        out.unused[pack_id] = unused
        if not kept:
            out.delete.append(pack_id)
        elif unused / size > o.max_unused and (budget is None or budget >= size):
            out.repack.append((pack_id, kept))
            if budget is not None:
                budget -= size
        else:
            out.keep.append(pack_id)
            out.unused_bytes_kept += sum(b.length for b in record.blobs if b.id not in used)
    out.blobs_removed = len({b.id for r in present.values() for b in r.blobs} - used)
    return out


def columns_of(record: PackRecord) -> PackColumns:
    numbers = array(index_module._U32)
    for b in record.blobs:
        numbers.extend((b.offset, b.length, b.raw_length))
    return PackColumns(record.info, b"".join(b.id for b in record.blobs), numbers)


def index_of(columns: dict[bytes, PackColumns]) -> BlobIndex:
    index = BlobIndex()
    index.add_columns(columns.values())
    return index


def blob_id(n: int, prefixes: int) -> bytes:
    """Ids of which several share their leading 8 bytes (``n % prefixes``)."""
    return (n % prefixes).to_bytes(8, "big") + n.to_bytes(24, "big")


@st.composite
def repositories(draw: st.DrawFn) -> tuple[dict, dict, set, PruneOptions]:
    pool = draw(st.integers(1, 40))
    prefixes = draw(st.sampled_from([1, 3, 1 << 20]))
    ids = [blob_id(n, prefixes) for n in range(pool)]
    records: dict[bytes, PackRecord] = {}
    stored: dict[str, int] = {}
    for p in range(draw(st.integers(0, 12))):
        pack_id = (p * 7919 + 11).to_bytes(32, "little")
        blobs = draw(st.lists(st.sampled_from(ids), max_size=10))  # repeats across and within
        lengths = draw(
            st.lists(st.sampled_from([1, 2, 5, 40]), min_size=len(blobs), max_size=len(blobs))
        )
        refs = [
            BlobRef(b, 40 + 50 * i, n, n)
            for i, (b, n) in enumerate(zip(blobs, lengths, strict=True))
        ]
        records[pack_id] = PackRecord(
            PackInfo(pack_id, bytes(32), draw(st.sampled_from([0, 1]))), refs
        )
        if draw(st.booleans()) or draw(st.booleans()):  # most packs are there
            stored[layout.pack_name(pack_id.hex())] = 40 + sum(lengths) + draw(st.integers(0, 3))
    for k in range(draw(st.integers(0, 2))):  # packs no index object lists
        stored[layout.pack_name(bytes([0xAA, k]).hex() * 16)] = 77
    used = set(draw(st.lists(st.sampled_from(ids), max_size=pool)))
    used |= {blob_id(pool + k, prefixes) for k in range(draw(st.integers(0, 2)))}  # missing
    options = PruneOptions(
        max_unused=draw(st.sampled_from([0.0, 0.3, 0.65, 1.0])),
        max_repack_bytes=draw(st.sampled_from([None, 0, 100, 300])),
    )
    return records, stored, used, options


@settings(max_examples=300, deadline=None)
@given(
    repo=repositories(),
    batch=st.sampled_from([1, 3, 1 << 18]),
    search=st.sampled_from([2, 1 << 18]),
)
def test_the_column_plan_is_the_record_plan(repo: tuple, batch: int, search: int) -> None:
    records, stored, used, options = repo
    expected = reference_plan(records, stored, used, options)
    columns = {p: columns_of(r) for p, r in records.items()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tally_module, "BATCH", batch)
        mp.setattr(index_module, "_SEARCH", search)
        ids = UsedBlobs.of(index_of(columns), used)
        plan = make_plan(columns, stored, ids, options)
        report = plan_module._report_from(plan, ids, 1 << 20)
    assert [r.info.id for r in plan.keep] == expected.keep
    assert [(r.info.id, kept) for r, kept in plan.repack] == expected.repack
    assert [r.info.id for r in plan.delete] == expected.delete
    assert plan.unused == expected.unused
    assert plan.missing == expected.missing
    assert plan.sizes == {p: stored[layout.pack_name(p.hex())] for p in expected.unused}
    assert plan.orphans == {n: s for n, s in stored.items() if layout.pack_id_of(n) not in records}
    assert report.unused_bytes_kept == expected.unused_bytes_kept
    assert report.blobs_removed == expected.blobs_removed
    assert report.blobs_used == len(used)
    assert report.bytes_repack_written == sum(b.length for _, k in expected.repack for b in k)


@settings(max_examples=200, deadline=None)
@given(
    stored=st.lists(st.integers(0, 60), max_size=80),
    ids=st.lists(st.integers(0, 90), max_size=80),
    others=st.lists(st.integers(0, 90), max_size=30),
    prefixes=st.sampled_from([1, 4, 1 << 20]),
    search=st.sampled_from([1, 5, 1 << 18]),
)
def test_used_blobs_are_marked_in_the_index(
    stored: list[int], ids: list[int], others: list[int], prefixes: int, search: int
) -> None:
    """Used ids are marked at their places in the index, those it lacks kept apart; each is
    counted once and found."""
    refs = [BlobRef(blob_id(n, prefixes), 0, 1, 1) for n in stored]
    record = PackRecord(PackInfo(bytes(32), bytes(32), 1), refs)
    blobs = [blob_id(n, prefixes) for n in ids]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index_module, "_SEARCH", search)
        used = UsedBlobs.of(index_of({bytes(32): columns_of(record)}), blobs[1:], blobs[:1])
        assert sorted(used) == sorted(set(blobs))
        assert len(used) == len(set(blobs))
        assert used.absent == set(blobs) - {r.id for r in refs}
        asked = [blob_id(n, prefixes) for n in others]
        assert [b in used for b in asked] == [b in set(blobs) for b in asked]


def test_ids_with_a_trailing_zero_byte_are_found_whole() -> None:
    ending = bytes(31) + b"\x01", b"\x01" + bytes(31), bytes(32)
    record = PackRecord(PackInfo(bytes(32), bytes(32), 1), [BlobRef(b, 0, 1, 1) for b in ending])
    used = UsedBlobs.of(index_of({bytes(32): columns_of(record)}), ending[1:])
    assert list(used) == sorted(ending[1:])
    assert ending[0] not in used
    assert all(b in used for b in ending[1:])


def test_the_marks_hold_until_the_index_is_merged_again() -> None:
    record = PackRecord(PackInfo(bytes(32), bytes(32), 1), [BlobRef(bytes(32), 0, 1, 1)])
    index = index_of({bytes(32): columns_of(record)})
    used = UsedBlobs.of(index, [bytes(32)])
    more = PackRecord(PackInfo(b"\x01" * 32, bytes(32), 1), [BlobRef(b"\x02" * 32, 0, 1, 1)])
    index.add_pack(more)
    index.merged()
    assert len(used) == 1
    with pytest.raises(RuntimeError, match="merged since"):
        list(used)


def test_a_plan_makes_blob_refs_only_for_the_blobs_repacked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Packs kept or deleted stay columns: a plan over many blobs makes an object only for
    each blob a repacked pack keeps."""
    made = []

    class Counted(BlobRef):
        def __new__(cls, *args: object) -> Counted:
            made.append(1)
            return super().__new__(cls, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(tally_module, "BlobRef", Counted)
    monkeypatch.setattr(index_module, "BlobRef", Counted)
    columns, stored, used = {}, {}, []
    for p in range(30):
        pack_id = p.to_bytes(32, "big")
        refs = [BlobRef(os.urandom(32), 40 + 10 * i, 10, 9) for i in range(100)]
        columns[pack_id] = columns_of(PackRecord(PackInfo(pack_id, bytes(32), 1), refs))
        stored[layout.pack_name(pack_id.hex())] = 1040
        # packs 0-9 used whole (kept), 10-19 used for 10 blobs (repacked), the rest unused
        used += [r.id for r in (refs if p < 10 else refs[:10] if p < 20 else [])]
    plan = make_plan(columns, stored, UsedBlobs.of(index_of(columns), used), PruneOptions())
    assert (len(plan.keep), len(plan.repack), len(plan.delete)) == (10, 10, 10)
    assert all(type(r) is PackColumns for r in [*plan.keep, *plan.delete])
    assert len(made) == sum(len(kept) for _, kept in plan.repack) == 100


def test_a_prune_plans_from_columns(tmp_path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """What a prune reads of the index stays columns, and so do the packs its plan keeps."""
    from tests.craft import create_repo, open_repo

    repo_path = create_repo(tmp_path / "repo", pack_size=64 << 10)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}.bin").write_bytes(os.urandom(10_000))
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    (src / "f0.bin").write_bytes(os.urandom(10_000))
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    assert run_cli("forget", "--repo", repo_path, "--keep-last", "1").code == 0
    repo = open_repo(repo_path, load_index=False)
    planned = plan_module.plan_now(repo, PruneOptions(dry_run=True))
    assert isinstance(planned.state.records, PackRecords)
    assert planned.plan.keep and all(type(r) is PackColumns for r in planned.plan.keep)
    assert planned.plan.delete or planned.plan.repack
    assert planned.report.blobs_removed >= 1
    _, report = plan_prune(open_repo(repo_path, load_index=False), PruneOptions())
    assert report.blobs_removed == planned.report.blobs_removed
