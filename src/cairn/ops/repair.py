"""Repairing a damaged repository.

``repair index`` rebuilds the index from the packs themselves (each pack's header, read from
its ends; with ``read_data`` every blob is also verified and damaged ones are left out), then
replaces the old index objects. ``repair snapshots`` writes, for each snapshot that refers to
blobs the index lacks or trees that do not load, a new snapshot without the damaged files
(a directory whose listing is lost becomes empty), tagged ``repaired``; the originals stay
unless asked otherwise. A repaired snapshot's summary counts what it holds (ops/treerewrite.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cairn.core.errors import CairnError, IntegrityError
from cairn.model.snapshot import Snapshot, Summary
from cairn.ops.progress import Progress
from cairn.ops.treerewrite import rewrite_tree
from cairn.ops.writelock import writing
from cairn.repo import layout
from cairn.repo.index import PackInfo, PackRecord
from cairn.repo.locks import HeldLock, LockBusy, Locks, new_lock
from cairn.repo.packlist import stored_packs
from cairn.repo.repository import Repository


@dataclass
class RepairIndexReport:
    packs: int = 0
    packs_unreadable: list[str] = field(default_factory=list)
    blobs: int = 0
    blobs_damaged: int = 0
    index_objects_written: int = 0
    index_objects_removed: int = 0


def repair_index(
    repo: Repository, progress: Progress, read_data: bool = False
) -> RepairIndexReport:
    locks = Locks(repo)
    busy = [lk for lk in locks.read_all() if not lk.is_stale() and lk.kind in ("prune", "repair")]
    if busy:
        raise LockBusy(f"another {busy[0].describe()} is running; try again later")
    report = RepairIndexReport()
    with HeldLock(locks, new_lock("repair")):
        old = [n for n, _ in repo.storage.list(layout.INDEX)]
        records = []
        packs = stored_packs(repo.storage, lambda n, why: progress.warning(n.encode(), why))
        for name, size in sorted(packs.items()):
            pack_id = layout.pack_id_of(name)
            assert pack_id is not None  # stored_packs lists pack names only
            report.packs += 1
            try:
                salt, blob_type, blobs = repo.read_pack_header(name, size)
            except CairnError as e:
                progress.warning(name.encode(), str(e))
                report.packs_unreadable.append(name)
                continue
            record = PackRecord(PackInfo(pack_id, salt, blob_type), blobs)
            if read_data:
                record = _verified(repo, record, report, progress)
            report.blobs += len(record.blobs)
            records.append(record)
            progress.item_done(name.encode(), size)
        written = repo.write_index(records)
        report.index_objects_written = len(written)
        for name in old:
            if name not in written:
                repo.storage.delete(name)
                report.index_objects_removed += 1
    return report


def _verified(
    repo: Repository, record: PackRecord, report: RepairIndexReport, progress: Progress
) -> PackRecord:
    """The record without the blobs that fail to decrypt to their id."""
    data = repo.storage.read(layout.pack_name(record.info.id.hex()))
    good = []
    for b in record.blobs:
        try:
            repo.load_blob_at(record.info, b, data[b.offset : b.offset + b.length])
            good.append(b)
        except IntegrityError as e:
            report.blobs_damaged += 1
            progress.warning(e.obj.encode(), e.detail)
    return PackRecord(record.info, good)


@dataclass
class RepairedSnapshot:
    original: str
    new: str | None  # None on a dry run, and for a damaged snapshot object
    removed: list[str]
    damaged: bool = False  # the snapshot object itself was damaged: it was deleted


def repair_snapshots(
    repo: Repository,
    snapshots: list[Snapshot],
    progress: Progress,
    forget: bool = False,
    dry_run: bool = False,
    damaged: dict[str, str] | None = None,
) -> list[RepairedSnapshot]:
    """Rewrites ``snapshots`` without their damaged files; deletes the ``damaged`` snapshot
    objects (id -> what is wrong), which nothing can read."""
    out: list[RepairedSnapshot] = []
    for hex_id, detail in sorted((damaged or {}).items()):
        if not dry_run:
            repo.storage.delete(layout.snapshot_name(hex_id))
        progress.warning(layout.snapshot_name(hex_id).encode(), f"{detail}; removed")
        out.append(RepairedSnapshot(hex_id, None, [f"(snapshot object: {detail})"], damaged=True))
    with writing(repo, "backup", dry_run=dry_run), repo.writer(dry_run=dry_run) as writer:
        pending = []
        for snap in snapshots:
            removed: list[str] = []
            summary = Summary(errors=snap.summary.errors)
            tree = rewrite_tree(writer, snap.tree, removed, summary)
            if removed:
                summary.errors += len(removed)
                pending.append((snap, tree, removed, summary))
        writer.flush()
        for snap, tree, removed, summary in pending:
            new_id = None
            if not dry_run:
                repaired = dataclasses.replace(
                    snap,
                    tree=tree,
                    tags=sorted({*snap.tags, "repaired"}),
                    original=snap.id,
                    summary=summary,
                    id="",
                )
                new_id = repo.save_snapshot(repaired.encode())
                if forget:
                    repo.storage.delete(layout.snapshot_name(snap.id))
            for path in removed:
                progress.warning(
                    path.encode("utf-8", "surrogateescape"), f"removed from snapshot {snap.id[:8]}"
                )
            out.append(RepairedSnapshot(snap.id, new_id, removed))
    return out
