"""The rewrite use case: snapshots written again without the files that match exclude
patterns (ops/rewrite.py), each with a new id; ``forget``: the old ones deleted."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn.app.context import Session
from cairn.app.records import record_run
from cairn.app.tag import select_snapshots
from cairn.core.errors import UsageError
from cairn.ops.excludes import read_pattern_file
from cairn.ops.filter_patterns import PatternList
from cairn.ops.rewrite import Rewritten, rewrite
from cairn.ops.snapshots import SnapshotFilter

__all__ = ["RewriteRequest", "RewriteResult", "Rewritten", "rewrite_snapshots"]


@dataclass(frozen=True)
class RewriteRequest:
    ids: Sequence[str] = ()  # ids, prefixes or latest; none: every snapshot of the filter
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)
    excludes: Sequence[str] = ()  # patterns, as backup's --exclude
    exclude_files: Sequence[str] = ()  # files of patterns
    forget: bool = False  # delete the snapshots rewritten
    dry_run: bool = False

    def matcher(self) -> PatternList:
        patterns = list(self.excludes)
        for f in self.exclude_files:
            patterns += read_pattern_file(f)
        matcher = PatternList(patterns)
        if not matcher:
            raise UsageError("nothing to do: give --exclude or --exclude-file")
        return matcher


@dataclass
class RewriteResult:
    snapshots: list[Rewritten]  # every snapshot chosen, oldest first
    dry_run: bool = False

    @property
    def changed(self) -> list[Rewritten]:
        return [r for r in self.snapshots if r.removed]


def rewrite_snapshots(session: Session, request: RewriteRequest) -> RewriteResult:
    matcher = request.matcher()  # before the repository is touched
    repo = session.repo
    select = functools.partial(select_snapshots, repo, request.ids, request.filter)
    done = rewrite(repo, select, matcher, forget=request.forget, dry_run=request.dry_run)
    if not request.dry_run and any(r.removed for r in done):
        record_run(session, "rewrite")
    return RewriteResult(done, request.dry_run)
