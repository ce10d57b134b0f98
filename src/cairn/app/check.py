"""The check and repair use cases: verify that every snapshot can be restored (structure, and
data on request), rebuild the index from the packs, and rewrite damaged snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.app.budget import whole_pack_reads
from cairn.app.context import Session
from cairn.app.events import Events
from cairn.app.records import record_run
from cairn.core.errors import UsageError
from cairn.ops.check import Checker, CheckReport, Subset
from cairn.ops.repair import RepairedSnapshot, RepairIndexReport, repair_index, repair_snapshots
from cairn.ops.snapshots import SnapshotFilter, read_snapshots, resolve, resolve_id
from cairn.repo.lockrule import lock_rule

__all__ = ["CheckReport", "RepairIndexReport", "RepairedSnapshot", "check", "rebuild_index"]


def check(
    session: Session, events: Events, read_data: bool = False, subset: str | None = None
) -> CheckReport:
    """``read_data``: read every pack; ``subset`` ("10%" or "n/m"): only that share of them."""
    selected = None
    if subset:
        try:
            selected = Subset.parse(subset)
        except ValueError as e:
            raise UsageError(f"--read-data-subset {subset}: use {e}") from None
    elif read_data:
        selected = Subset()
    defaults = session.defaults
    data_threads = 0
    if selected is not None:
        data_threads = whole_pack_reads(
            session.spec.store.memory_limit, session.repo.config.pack_size, defaults.uploads
        )
        if data_threads > 1:
            events.status(f"reading {data_threads} packs at a time")
    session.repo.detach_cache()  # what the store holds is checked, not this host's copies
    lock = lock_rule(session.repo.config)
    return Checker(session.repo, events, defaults.tree_threads, data_threads, lock).run(selected)


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
