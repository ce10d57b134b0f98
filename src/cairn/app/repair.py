"""The repair use cases: rebuild the index from the packs, and rewrite damaged snapshots
without the files whose data is lost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.app.context import Session
from cairn.app.events import Events
from cairn.app.records import record_run
from cairn.ops.repair import RepairedSnapshot, RepairIndexReport, repair_index, repair_snapshots
from cairn.ops.snapshots import SnapshotFilter, read_snapshots, resolve, resolve_id

__all__ = [
    "RepairIndexReport",
    "RepairSnapshotsResult",
    "RepairedSnapshot",
    "rebuild_index",
    "repair",
]


def rebuild_index(session: Session, events: Events, read_data: bool = False) -> RepairIndexReport:
    """A new index from the packs' own headers (``read_data``: leaving out damaged blobs)."""
    session.repo.detach_cache()
    report = repair_index(session.repo, events, read_data=read_data)
    record_run(session, "repair index")
    return report


@dataclass
class RepairSnapshotsResult:
    repaired: list[RepairedSnapshot]
    considered: int  # snapshots looked at, damaged objects included


def repair(
    session: Session,
    events: Events,
    refs: Sequence[str] = (),
    flt: SnapshotFilter | None = None,
    forget: bool = False,
    dry_run: bool = False,
) -> RepairSnapshotsResult:
    """New snapshots without the files whose data is lost (tagged ``repaired``; ``forget``:
    the originals deleted), of ``refs`` or every snapshot passing ``flt``; damaged snapshot
    objects are removed (only when no --host/--tag/--path selects: theirs are unknown)."""
    repo = session.repo
    flt = flt or SnapshotFilter()
    repo.load_index()
    if refs:
        ids = [resolve(repo, r, flt).id if r == "latest" else resolve_id(repo, r) for r in refs]
        listing = read_snapshots(repo, ids)
    else:
        listing = read_snapshots(repo)
        if flt.hosts or flt.tags or flt.paths:
            for hex_id in listing.damaged:
                events.warning(
                    f"snapshots/{hex_id}".encode(), "damaged; not selected by --host/--tag/--path"
                )
            listing.damaged.clear()
        listing.snapshots = [s for s in listing.snapshots if flt.matches(s)]
    repaired = repair_snapshots(
        repo, listing.snapshots, events, forget=forget, dry_run=dry_run, damaged=listing.damaged
    )
    if not dry_run:
        record_run(session, "repair snapshots")
    return RepairSnapshotsResult(repaired, len(listing.snapshots) + len(listing.damaged))
