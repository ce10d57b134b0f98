"""The prune use case: free the space of data no snapshot uses (docs/format.md §12), or, as a
dry run, plan it and estimate what it would cost and save."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cairn.app.budget import repack_budget
from cairn.app.context import Session
from cairn.app.events import Events
from cairn.app.records import RECORD_BYTES, record_run
from cairn.core import clock
from cairn.model.oprecord import DeletedObject
from cairn.ops.objectlock import active_lock, deleted_kept_until
from cairn.ops.prune import (
    REPACK_READS,
    REPACK_UPLOADS,
    PruneOptions,
    PruneReport,
    PruneSteps,
    plan_prune,
    run_prune,
)

__all__ = ["PruneReport", "PruneRequest", "PruneResult", "billing", "prune"]


@dataclass(frozen=True)
class PruneRequest:
    max_unused: float = PruneOptions.max_unused  # repack a pack when more of it is unused
    max_repack_bytes: int | None = None  # read at most this much to repack
    max_wait: float = PruneOptions.max_wait  # seconds to wait for running backups
    dry_run: bool = False
    record: bool = True  # write the run's operation record (forget --prune writes its own)

    def options(self) -> PruneOptions:
        return PruneOptions(
            max_unused=self.max_unused,
            max_repack_bytes=self.max_repack_bytes,
            dry_run=self.dry_run,
            max_wait=self.max_wait,
        )


@dataclass
class PruneResult:
    report: PruneReport
    estimate: dict[str, Any] | None = None  # a dry run's cost and saving (app/cost.py)


def prune(session: Session, request: PruneRequest, events: Events) -> PruneResult:
    if request.dry_run:
        plan, report = plan_prune(session.repo, request.options())
        # the prune's requests: its reads as this dry run made them (the opening, the look at
        # the locks, planning: listings' answers included), the rest as planned, and its
        # operation record
        made = session.usage()
        for k in ("get", "head", "list", "bytes_down"):
            q = report.requests.get(k, 0) - report.looked.get(k, 0)
            report.requests[k] = q + made.get(k, 0)
        report.requests["list"] += session.keys_listings_ahead()  # as the prune's opening will
        report.requests["put"] += 1
        report.requests["bytes_up"] += RECORD_BYTES
        # the cost model (and the restore it estimates too) for a dry run only
        from cairn.app.cost import prune_estimate

        return PruneResult(report, prune_estimate(session, plan, report))
    budget, reads = repack_budget(
        session.spec.store.memory_limit,
        session.repo.config.pack_size,
        REPACK_UPLOADS,
        REPACK_READS,
        spool=session.defaults.spool_packs,
    )
    events.status(f"{budget.describe()}, {reads} packs read at once to repack")
    options = replace(request.options(), spool=budget.spool, repack_reads=reads)
    report = run_prune(session.repo, options, events, waiting_status(events))
    rule = active_lock(session.repo)
    if rule is not None and (report.bytes_freed or report.index_objects_replaced):
        report.freed_after = deleted_kept_until(rule, clock.now()).isoformat()
    # what it did, as a dry run's estimate says beforehand (and the record's own PUT)
    if request.record:
        classes, deleted = billing(session, report)
        report.requests = record_run(session, "prune", classes=classes, deleted=deleted)
    else:
        report.requests = session.usage()
    return PruneResult(report)


def billing(
    session: Session, report: PruneReport
) -> tuple[dict[str, dict[str, int]], list[DeletedObject]]:
    """What a prune's record keeps beyond its requests: the requests it made of packs in each
    storage class (reads and deletions of the packs it removed; PUTs of its new data packs,
    in the session's storage class), and the packs it deleted with their classes and dates.
    Nothing on a store without classes."""
    t = report.touched
    if t is None or not (t.classes or t.deleted):
        return {}, []
    classes = {c: dict(v) for c, v in t.classes.items()}
    data_class = session.spec.store.s3.storage_class
    data_packs = report.packs_written - report.tree_packs_written
    if data_class and data_packs:
        line = classes.setdefault(data_class, {})
        line["put"] = line.get("put", 0) + data_packs
    deleted = [DeletedObject(o.storage_class, o.size, o.modified) for o in t.deleted if o.modified]
    return classes, deleted


def waiting_status(events: Events) -> PruneSteps:
    """Tells the events, once per change, which backups a prune waits for."""
    shown = [""]

    def step(name: str, detail: str) -> None:
        if name == "waiting" and detail != shown[0]:
            shown[0] = detail
            events.status(f"waiting for backups that started before the deletion: {detail}")

    return step
