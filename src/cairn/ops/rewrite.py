"""Rewriting snapshots without the entries that match exclude patterns (restic's
``rewrite``): for each snapshot, its tree rewritten (ops/treerewrite.py: only the trees on the
way to an excluded entry are new; the data blobs are the same), then a new snapshot object
that records the id it replaces in ``original`` (as ``repair snapshots`` does), the patterns
added to its ``excludes``, and a summary of what it now holds; with ``forget`` the old object
is deleted. The data only the old snapshots used stays until a prune.

Everything is written under a ``backup`` lock taken before the snapshots are read, with the
index loaded without the packs a running prune condemned (ops/writelock.writing), as a backup
and ``tag`` do: a prune that started earlier sees the new snapshots, and nothing is written
once the lock went stale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from cairn.model.snapshot import Snapshot, Summary
from cairn.ops.filter_patterns import PatternList
from cairn.ops.treerewrite import rewrite_tree
from cairn.ops.writelock import writing
from cairn.repo import layout
from cairn.repo.repository import Repository


@dataclass(frozen=True)
class Rewritten:
    old: Snapshot
    removed: list[str]  # the paths left out (a directory with all it holds); empty: unchanged
    new_id: str | None = None  # None when unchanged, and on a dry run
    forgotten: bool = False  # the old snapshot object was deleted


def rewrite(
    repo: Repository,
    select: Callable[[], list[Snapshot]],
    exclude: PatternList,
    forget: bool = False,
    dry_run: bool = False,
) -> list[Rewritten]:
    """Rewrites the snapshots ``select`` returns (called once the lock is held) without the
    entries ``exclude`` matches; a snapshot with no such entry is left as it is."""
    out: list[Rewritten] = []
    with writing(repo, "backup", dry_run), repo.writer(dry_run=dry_run) as writer:
        pending = []
        for snap in select():
            removed: list[str] = []
            summary = Summary(errors=snap.summary.errors)
            tree = rewrite_tree(writer, snap.tree, removed, summary, exclude)
            pending.append((snap, tree, removed, summary))
        writer.flush()  # every new tree stored before a snapshot refers to it
        for snap, tree, removed, summary in pending:
            if not removed or dry_run:
                out.append(Rewritten(snap, removed))
                continue
            new = dataclasses.replace(
                snap,
                tree=tree,
                original=snap.id,
                excludes=list(dict.fromkeys([*snap.excludes, *exclude.patterns])),
                summary=summary,
                id="",
            )
            new_id = repo.save_snapshot(new.encode())
            if forget and new_id != snap.id:
                repo.storage.delete(layout.snapshot_name(snap.id))
            out.append(Rewritten(snap, removed, new_id, forgotten=forget))
    return out
