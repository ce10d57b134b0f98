"""Changing the tags of snapshots: a new snapshot object with the new tags, then the old one
deleted (objects are write-once, so the snapshot's id changes, as in restic).

The new object records the id it replaces in ``original`` (the first one, when a snapshot is
retagged again), and refers to the same tree. It is written under a ``backup`` lock taken
before the snapshots are read (docs/format.md §12): a prune that started earlier waits for it,
then reads the new snapshot in its rescue step, so nothing the snapshot uses can be deleted
while its only object is the new one; and nothing is written once the lock went stale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cairn.model.snapshot import Snapshot
from cairn.ops.writelock import holding
from cairn.repo import layout
from cairn.repo.repository import Repository


@dataclass(frozen=True)
class TagChange:
    """What to do to each snapshot's tags: ``set`` replaces them all (when not None), then
    ``add`` and ``remove`` apply."""

    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()
    set: frozenset[str] | None = None

    def apply(self, tags: Sequence[str]) -> list[str]:
        new = set(tags) if self.set is None else set(self.set)
        return sorted((new | self.add) - self.remove)


@dataclass(frozen=True)
class Retagged:
    old: Snapshot
    tags: list[str]  # the tags it has now (or would have, on a dry run)
    changed: bool  # False: it had these tags already, and was left alone
    new_id: str | None = None  # the new snapshot's id (None when unchanged, or a dry run)


def retag(
    repo: Repository,
    select: Callable[[], list[Snapshot]],
    change: TagChange,
    dry_run: bool = False,
) -> list[Retagged]:
    """Changes the tags of the snapshots ``select`` returns (called once the lock is held);
    a snapshot whose tags do not change is left as it is."""
    out = []
    with holding(repo, "backup", dry_run):
        for snap in select():
            tags = change.apply(snap.tags)
            if tags == sorted(set(snap.tags)):
                out.append(Retagged(snap, tags, changed=False))
                continue
            new_id = None
            if not dry_run:
                new = dataclasses.replace(snap, tags=tags, original=snap.original or snap.id)
                new_id = repo.save_snapshot(new.encode())
                if new_id != snap.id:
                    repo.storage.delete(layout.snapshot_name(snap.id))
            out.append(Retagged(snap, tags, changed=True, new_id=new_id))
    return out
