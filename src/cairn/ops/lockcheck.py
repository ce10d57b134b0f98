"""Whether every snapshot's data is locked until the snapshot's lock end (``check`` on a
repository with an object lock, docs/objectlock.md).

A snapshot's lock end is its time + DAYS. Until then the store must refuse to delete the
snapshot object, every pack that holds one of its blobs (trees and data), the index objects,
the keys and the config. Each pack must be locked until the latest lock end among the
snapshots that use it; the index objects, keys and config until the latest of all. Snapshots
whose lock ended are not looked at (nothing of theirs has to stay locked). One GET-class
request (GetObjectRetention) per object looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cairn.model.snapshot import Snapshot
from cairn.ops.objectlock import lock_ends
from cairn.ops.usage import used_blobs
from cairn.repo import layout
from cairn.repo.packcache import PackCache
from cairn.repo.repository import Repository
from cairn.storage.objectlock import RetentionRule


@dataclass
class Shortfall:
    object: str
    until: datetime | None  # None: no retention at all
    needed: datetime
    snapshot: str  # the snapshot (id) whose lock end it falls short of

    def message(self) -> str:
        has = (
            f"is locked only until {self.until:%Y-%m-%d %H:%M} UTC"
            if self.until
            else ("has no retention")
        )
        return (
            f"{has}, but snapshot {self.snapshot[:8]} needs it locked until "
            f"{self.needed:%Y-%m-%d %H:%M} UTC"
        )


@dataclass
class RetentionReport:
    objects: int = 0  # objects whose retention was asked
    shortfalls: list[Shortfall] = field(default_factory=list)


def required_locks(
    repo: Repository,
    rule: RetentionRule,
    snapshots: list[Snapshot],
    now: datetime,
    trees: PackCache | None = None,
    index_names: list[str] | None = None,
) -> dict[str, tuple[datetime, str]]:
    """Object name -> (the date it must stay locked until, the snapshot that needs it), for
    the snapshots whose lock has not ended. The newest lock end first: a tree read for it is
    not read again for an older snapshot (which needs less)."""
    live = sorted(
        (s for s in snapshots if rule.until(s.time) > now),
        key=lambda s: rule.until(s.time),
        reverse=True,
    )
    need: dict[str, tuple[datetime, str]] = {}
    if not live:
        return need
    newest = live[0]
    end = rule.until(newest.time)
    shared = [layout.CONFIG, *(n for n, _ in repo.storage.list(layout.KEYS))]
    if index_names is None:
        index_names = [n for n, _ in repo.storage.list(layout.INDEX)]
    for name in [*shared, *index_names]:
        need[name] = (end, newest.id)
    seen: set[bytes] = set()
    for snap in live:
        end = rule.until(snap.time)
        need[layout.snapshot_name(snap.id)] = (end, snap.id)
        blobs = used_blobs(repo, [snap], known=seen, trees=trees)
        seen |= blobs.trees  # what the next snapshot need not read again
        for blob_id in blobs:
            entry = repo.index.get(blob_id)
            if entry is not None:  # a blob in no pack is the structure check's finding
                need.setdefault(layout.pack_name(entry.pack.id.hex()), (end, snap.id))
    return need


def check_retention(
    repo: Repository,
    rule: RetentionRule,
    snapshots: list[Snapshot],
    now: datetime,
    trees: PackCache | None = None,
    index_names: list[str] | None = None,
) -> RetentionReport:
    need = required_locks(repo, rule, snapshots, now, trees, index_names)
    ends = lock_ends(repo, sorted(need))
    report = RetentionReport(objects=len(ends))
    for name in sorted(need):
        until, (needed, snap) = ends[name], need[name]
        if until is None or until < needed:
            report.shortfalls.append(Shortfall(name, until, needed, snap))
    return report
