"""The tag use case: add, remove or set the tags of existing snapshots (ops/tag.py). Each
changed snapshot gets a new id, as in restic."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn.app.context import Session
from cairn.app.records import record_run
from cairn.core.errors import UsageError
from cairn.model.snapshot import Snapshot
from cairn.ops.snapshots import SnapshotFilter, load_snapshots, resolve
from cairn.ops.tag import Retagged, TagChange, retag
from cairn.repo.repository import Repository

__all__ = ["Retagged", "TagRequest", "TagResult", "tag"]


@dataclass(frozen=True)
class TagRequest:
    ids: Sequence[str] = ()  # ids, prefixes or latest; none: every snapshot of the filter
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)
    add: Sequence[str] = ()  # each entry may list several tags: "a,b"
    remove: Sequence[str] = ()
    set: Sequence[str] | None = None  # replace all tags ("" alone: no tags at all)
    dry_run: bool = False

    def change(self) -> TagChange:
        if self.set is None and not self.add and not self.remove:
            raise UsageError("nothing to do: give --add, --remove or --set")
        if self.set is not None and (self.add or self.remove):
            raise UsageError("--set replaces all tags: give it alone, not with --add or --remove")
        return TagChange(
            add=_tags(self.add),
            remove=_tags(self.remove),
            set=None if self.set is None else _tags(self.set),
        )


@dataclass
class TagResult:
    snapshots: list[Retagged]  # every snapshot chosen, oldest first
    dry_run: bool = False

    @property
    def changed(self) -> list[Retagged]:
        return [r for r in self.snapshots if r.changed]


def tag(session: Session, request: TagRequest) -> TagResult:
    change = request.change()
    repo = session.repo
    select = functools.partial(select_snapshots, repo, request.ids, request.filter)
    result = TagResult(retag(repo, select, change, request.dry_run), request.dry_run)
    if not request.dry_run:
        record_run(session, "tag")
    return result


def select_snapshots(repo: Repository, refs: Sequence[str], flt: SnapshotFilter) -> list[Snapshot]:
    """The snapshots ``refs`` names (ids, prefixes or latest, within ``flt``), or every
    snapshot passing ``flt`` when none is named; oldest first, each once. Every name is
    resolved before anything is written (an unknown one is an error)."""
    if not refs:
        return load_snapshots(repo, flt)
    chosen: dict[str, Snapshot] = {}
    for ref in refs:
        snap = resolve(repo, ref, flt)
        chosen.setdefault(snap.id, snap)
    return sorted(chosen.values(), key=lambda s: (s.time, s.id))


def _tags(values: Sequence[str]) -> frozenset[str]:
    return frozenset(t.strip() for v in values for t in v.split(",") if t.strip())
