"""The forget use case: remove the snapshots a retention policy does not keep (or the ones
named by id), then, if asked, prune. Policies mean what they mean in restic (ops/retention.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cairn.app.context import Session
from cairn.app.events import Events
from cairn.app.records import record_run
from cairn.core import clock
from cairn.core.errors import CairnError, UsageError
from cairn.model.snapshot import Snapshot
from cairn.ops.forget import plan_by_ids, plan_by_policy, remove_snapshots
from cairn.ops.objectlock import active_lock, deleted_kept_until
from cairn.ops.retention import (
    UNLIMITED,
    Duration,
    GroupResult,
    Policy,
    PolicyError,
    parse_group_by,
)
from cairn.ops.snapshots import SnapshotFilter

if TYPE_CHECKING:
    from cairn.app.prune import PruneResult
    from cairn.model.oprecord import DeletedObject

__all__ = ["UNLIMITED", "ForgetRequest", "ForgetResult", "GroupResult", "Policy", "forget"]
DEFAULT_GROUP_BY = "host,paths"


@dataclass(frozen=True)
class ForgetRequest:
    ids: Sequence[str] = ()  # snapshots to remove by id (or latest): no policy then
    counts: Mapping[str, int] = field(default_factory=dict)  # last, hourly, ..., yearly
    within: str | None = None  # keep everything this much newer than the group's newest
    # {"daily": "7d"}: the newest of each day within 7d of the group's newest
    within_periods: Mapping[str, str] = field(default_factory=dict)
    keep_tags: Sequence[str] = ()  # "a,b": keep snapshots with both; entries are alternatives
    group_by: str | None = None  # default host,paths
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)
    dry_run: bool = False
    prune: bool = False  # prune afterwards if anything was removed
    rules: Policy | None = None  # a policy already made (a job's): then counts etc. are unused

    def policy(self) -> Policy:
        if self.rules is not None:
            return self.rules
        try:
            return Policy(
                **self.counts,
                within=Duration.parse(self.within) if self.within is not None else None,
                within_periods=tuple(
                    (rule, Duration.parse(text)) for rule, text in self.within_periods.items()
                ),
                tags=tuple(tuple(t.strip() for t in tag.split(",")) for tag in self.keep_tags),
            )
        except PolicyError as e:
            raise UsageError(str(e)) from None


@dataclass
class ForgetResult:
    groups: list[GroupResult[Snapshot]]
    policy: Policy | None  # None when snapshots were named by id
    removed: int = 0
    would_remove: int = 0  # on a dry run
    prune: PruneResult | None = None
    prune_error: CairnError | None = None  # the snapshots are gone all the same
    requests: dict[str, int] | None = None  # the whole run's, its operation record's PUT included
    # on a repository with an object lock: the removed snapshot objects stay, as locked
    # versions, until then at the latest (recoverable until then: docs/objectlock.md)
    kept_until: datetime | None = None


def forget(session: Session, request: ForgetRequest, events: Events) -> ForgetResult:
    policy = request.policy()
    flt = request.filter
    if request.ids:
        if not policy.is_empty() or request.group_by is not None:
            raise UsageError("give either snapshot ids or --keep-* options, not both")
        if flt.hosts or flt.tags or flt.paths:
            raise UsageError("--host, --tag and --path select snapshots for a policy, not ids")
    elif policy.is_empty():
        raise UsageError(
            "no policy: give --keep-last, --keep-hourly/daily/weekly/monthly/yearly, "
            "--keep-within or --keep-tag (or snapshot ids); refusing to remove every snapshot"
        )
    repo = session.repo
    if request.ids:
        groups = plan_by_ids(repo, request.ids)
    else:
        try:
            fields = parse_group_by(
                DEFAULT_GROUP_BY if request.group_by is None else request.group_by
            )
        except PolicyError as e:
            raise UsageError(str(e)) from None
        groups = plan_by_policy(repo, policy, now=clock.now(), group_by=fields, flt=flt)
    doomed = [s for g in groups for s in g.removed]
    result = ForgetResult(groups, None if request.ids else policy)
    if request.dry_run:
        result.would_remove = len(doomed)
        return result
    result.removed = remove_snapshots(repo, doomed)
    rule = active_lock(repo)
    if rule is not None and result.removed:
        result.kept_until = deleted_kept_until(rule, clock.now())
    if request.prune and result.removed:
        from cairn.app.prune import PruneRequest, prune  # the prune's code for --prune only

        try:
            result.prune = prune(session, PruneRequest(record=False), events)
        except CairnError as e:
            result.prune_error = e
        freed = result.prune.report.freed_after if result.prune else None
        if result.kept_until is not None and freed is not None:
            # what the prune deleted, later, stays as long: the command's date is the later
            result.kept_until = max(result.kept_until, datetime.fromisoformat(freed))
    command = "forget --prune" if result.prune else "forget"
    classes: dict[str, dict[str, int]] = {}
    deleted: list[DeletedObject] = []
    if result.prune:
        from cairn.app.prune import billing

        classes, deleted = billing(session, result.prune.report)
    result.requests = record_run(session, command, removed=doomed, classes=classes, deleted=deleted)
    return result
