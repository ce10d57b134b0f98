"""Finding snapshots and what is in them: the snapshot list, and the entries below a path of
one snapshot (ls)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cairn.app.context import Session
from cairn.app.events import Events
from cairn.core.errors import UsageError
from cairn.model.node import DIR, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.retention import GroupKey, PolicyError, group_key, parse_group_by
from cairn.ops.snapshots import SnapshotFilter, find_node, load_snapshots, resolve, split_path
from cairn.ops.treewalk import TreeProblem, walk_ahead

__all__ = [
    "GroupKey",
    "Listing",
    "Node",
    "Snapshot",
    "SnapshotFilter",
    "group_snapshots",
    "list_entries",
    "list_snapshots",
]


def snapshot_filter(
    hosts: Sequence[str] = (), tags: Sequence[str] = (), paths: Sequence[str] = ()
) -> SnapshotFilter:
    """Snapshots of any of ``hosts``, with all tags of any entry of ``tags`` ("a,b": both),
    holding all of ``paths``; empty: any."""
    return SnapshotFilter(hosts=hosts, tags=tags, paths=paths)


def list_snapshots(
    session: Session, flt: SnapshotFilter | None = None, latest: int | None = None
) -> list[Snapshot]:
    """The readable snapshots that pass ``flt``, oldest first (a damaged one is skipped with a
    notice); with ``latest``, only the ``latest`` newest of each host and set of paths."""
    snaps = load_snapshots(session.repo, flt)
    if latest is None:
        return snaps
    seen: dict[GroupKey, int] = defaultdict(int)
    keep = set()
    for snap in reversed(snaps):
        key = group_key(snap, ("host", "paths"))
        if seen[key] < latest:
            seen[key] += 1
            keep.add(snap.id)
    return [s for s in snaps if s.id in keep]


def group_snapshots(
    snaps: Sequence[Snapshot], group_by: str
) -> list[tuple[GroupKey, list[Snapshot]]]:
    """``snaps`` in groups by ``group_by`` (fields among host, paths, tags, comma-separated;
    '' for one group), each group in the order of its oldest snapshot, oldest first within."""
    try:
        fields = parse_group_by(group_by)
    except PolicyError as e:
        raise UsageError(str(e)) from None
    groups: dict[GroupKey, list[Snapshot]] = {}
    for snap in snaps:
        groups.setdefault(group_key(snap, fields), []).append(snap)
    return list(groups.items())


@dataclass
class Listing:
    """The entries below a path of a snapshot, read as they are taken; a problem in a tree
    (damaged or crafted) goes to the events as a warning, and the rest is still listed."""

    snapshot: Snapshot
    _entries: Iterator[tuple[bytes, Node]]
    problems: int = 0
    _events: Events | None = field(default=None, repr=False)

    def entries(self) -> Iterator[tuple[bytes, Node]]:
        return self._entries

    def report(self, problem: TreeProblem) -> None:
        self.problems += 1
        if self._events is not None:
            self._events.warning(problem.path or b"/", problem.describe())


def list_entries(
    session: Session, ref: str, path: str, events: Events, flt: SnapshotFilter | None = None
) -> Listing:
    """Every entry at and below ``path`` of the snapshot ``ref`` (``latest`` or an id prefix),
    depth first, parents before children."""
    repo = session.repo
    snap = resolve(repo, ref, flt)
    repo.load_index()  # after the snapshot: a newer one may use newer index objects
    top = find_node(repo, snap, path)
    parts = split_path(path)
    base = b"/" + b"/".join(parts) if parts else b""
    listing = Listing(snap, iter(()), _events=events)
    if top.type == DIR and top.subtree is not None:
        listing._entries = walk_ahead(
            repo,
            top.subtree,
            base,
            listing.report,
            depth=len(parts) + 1,
            threads=session.defaults.tree_threads,
        )
    else:
        listing._entries = iter([(base, top)])
    return listing
