"""The diff use case: what changed between two snapshots (ops/diff.py compares the trees)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cairn.app.context import Session
from cairn.app.events import Events
from cairn.model.snapshot import Snapshot
from cairn.ops.diff import ADDED, METADATA, MODIFIED, REMOVED, TYPE, Change, DiffCounts, diff_trees
from cairn.ops.snapshots import SnapshotFilter, resolve
from cairn.ops.treewalk import TreeProblem
from cairn.repo.repository import Repository

__all__ = [
    "ADDED",
    "METADATA",
    "MODIFIED",
    "REMOVED",
    "TYPE",
    "Change",
    "DiffCounts",
    "Difference",
    "diff",
]


@dataclass
class Difference:
    """Two snapshots and their changes, compared as ``changes()`` is iterated; the counts and
    the bytes are complete once it has been. A problem in a tree goes to the events as a
    warning and is counted; the rest is still compared."""

    old: Snapshot
    new: Snapshot
    counts: DiffCounts
    _changes: Iterator[Change]
    _repo: Repository = field(repr=False)
    problems: int = 0
    _events: Events | None = field(default=None, repr=False)

    def changes(self) -> Iterator[Change]:
        return self._changes

    def report(self, problem: TreeProblem) -> None:
        self.problems += 1
        if self._events is not None:
            self._events.warning(problem.path or b"/", problem.describe())

    def bytes_added(self) -> int:
        """Content in the new snapshot's changed entries that the old one's did not have."""
        return self._size(self.counts.blobs_added - self.counts.blobs_removed)

    def bytes_removed(self) -> int:
        """Content in the old snapshot's changed entries that the new one's does not have."""
        return self._size(self.counts.blobs_removed - self.counts.blobs_added)

    def _size(self, blobs: set[bytes]) -> int:
        total = 0
        for blob_id in blobs:
            entry = self._repo.index.get(blob_id)
            if entry is not None:
                total += entry.raw_length
        return total


def diff(
    session: Session,
    old_ref: str,
    new_ref: str,
    events: Events,
    flt: SnapshotFilter | None = None,
) -> Difference:
    """The changes from snapshot ``old_ref`` to ``new_ref`` (ids, prefixes, or ``latest``
    with ``flt``); the snapshots are resolved, and the index loaded, before this returns."""
    repo = session.repo
    old = resolve(repo, old_ref, flt)
    new = resolve(repo, new_ref, flt)
    repo.load_index()  # after the snapshots: a newer one may use newer index objects
    counts = DiffCounts()
    result = Difference(old, new, counts, iter(()), repo, _events=events)
    result._changes = diff_trees(repo, old.tree, new.tree, counts, result.report)
    return result
