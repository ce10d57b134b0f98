"""The find use case: the entries matching patterns, in every snapshot chosen.

Patterns mean what they mean in restic's ``find`` (and in cairn's excludes,
ops/excludes.py): a pattern without ``/`` is matched against an entry's name, one with ``/``
against its whole path (anchored at the root when it starts with ``/``, otherwise any trailing
part of it); ``*`` stays within a path component, ``**`` crosses them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cairn.app.context import Session
from cairn.app.events import Events
from cairn.core.errors import UsageError
from cairn.model.node import Node
from cairn.model.snapshot import Snapshot
from cairn.ops.excludes import PathMatcher
from cairn.ops.snapshots import SnapshotFilter, load_snapshots, resolve
from cairn.ops.treewalk import TreeProblem, walk_ahead

__all__ = ["FindRequest", "Finding", "Found", "find"]


@dataclass(frozen=True)
class FindRequest:
    patterns: Sequence[str]
    snapshots: Sequence[str] = ()  # ids, prefixes or latest; none: every snapshot of the filter
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)
    newest: datetime | None = None  # only entries modified at or before this time
    oldest: datetime | None = None  # only entries modified at or after this time


@dataclass
class Found:
    """The matching entries of one snapshot, in tree order (parents before children)."""

    snapshot: Snapshot
    entries: list[tuple[bytes, Node]]


@dataclass
class Finding:
    """The snapshots searched (oldest first) and, as they are searched, what matched; a
    problem in a tree goes to the events as a warning and is counted, and the rest is still
    searched."""

    snapshots: list[Snapshot]
    _search: Iterator[Found]
    problems: int = 0
    _events: Events | None = field(default=None, repr=False)

    def results(self) -> Iterator[Found]:
        """One ``Found`` per snapshot searched, with or without matches."""
        return self._search

    def report(self, problem: TreeProblem) -> None:
        self.problems += 1
        if self._events is not None:
            self._events.warning(problem.path or b"/", problem.describe())


def find(session: Session, request: FindRequest, events: Events) -> Finding:
    """The snapshots to search are resolved (and the index loaded) before this returns; the
    trees are walked as ``results()`` is iterated."""
    matcher = PathMatcher(request.patterns)
    if not matcher:
        raise UsageError("find needs at least one non-empty pattern")
    if request.newest and request.oldest and request.oldest > request.newest:
        raise UsageError("--oldest is later than --newest: nothing can match")
    repo = session.repo
    if request.snapshots:
        chosen: dict[str, Snapshot] = {}
        for ref in request.snapshots:
            snap = resolve(repo, ref, request.filter)
            chosen.setdefault(snap.id, snap)
        snaps = sorted(chosen.values(), key=lambda s: (s.time, s.id))
    else:
        snaps = load_snapshots(repo, request.filter)
    repo.load_index()  # after the snapshots: a newer one may use newer index objects
    newest = _ns(request.newest)
    oldest = _ns(request.oldest)
    finding = Finding(snaps, iter(()), _events=events)

    def search() -> Iterator[Found]:
        for snap in snaps:
            hits = [
                (path, node)
                for path, node in walk_ahead(
                    repo, snap.tree, b"", finding.report, threads=session.defaults.tree_threads
                )
                if (newest is None or node.mtime <= newest)
                and (oldest is None or node.mtime >= oldest)
                and matcher.matches(path)
            ]
            yield Found(snap, hits)

    finding._search = search()
    return finding


def _ns(when: datetime | None) -> int | None:
    """A time as nanoseconds since the epoch (a time without a zone is local time)."""
    if when is None:
        return None
    return int(when.astimezone().timestamp() * 1_000_000_000)
