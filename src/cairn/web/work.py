"""What each operation does: a job, a prune, a job's retention, a check, a restore, each a use
case of cairn.app run with the operation's events, its outcome put in a line."""

from __future__ import annotations

import os

from cairn.app.browse import Browser
from cairn.app.check import check
from cairn.app.forget import ForgetRequest, forget
from cairn.app.jobs import FAILED, PARTIAL, JobRunner
from cairn.app.prune import PruneRequest, prune
from cairn.app.restore import RestoreRequest, restore
from cairn.app.snapshots import snapshot_filter
from cairn.config.schema import JobConfig
from cairn.core.errors import UsageError
from cairn.core.units import count, format_bytes
from cairn.web import operations
from cairn.web.operations import Outcome, WebEvents


def run_job(job: JobConfig, events: WebEvents) -> Outcome:
    result = JobRunner(job, events, events.note).run()
    outcome = {FAILED: operations.FAILED, PARTIAL: operations.PARTIAL}.get(
        result.status, operations.OK
    )
    parts = [f"job {job.name}: {result.status}"]
    if result.snapshot is not None and result.snapshot.id:
        s = result.snapshot.summary
        parts.append(
            f"snapshot {result.snapshot.id[:8]}: {s.files_new} new, {s.files_changed} changed "
            f"files, {format_bytes(s.bytes_added)} added"
        )
    if result.forgotten:
        parts.append(f"forgot {count(result.forgotten, 'snapshot')}")
    if result.error:
        parts.append(result.error)
    return Outcome(outcome, "; ".join(parts))


def run_prune(browser: Browser, events: WebEvents) -> Outcome:
    report = prune(browser.session.reopened(), PruneRequest(), events).report
    if report.postponed:
        return Outcome(operations.PARTIAL, f"prune postponed: {report.postponed}")
    return Outcome(
        summary=f"deleted {count(report.packs_deleted, 'pack')}, "
        f"{format_bytes(report.bytes_freed)} freed"
    )


def run_retention(browser: Browser, job: JobConfig, events: WebEvents) -> Outcome:
    """The job's retention policy over its snapshots (of every host), then a prune."""
    if job.retention is None:
        raise UsageError(f"job {job.name} has no retention policy")
    request = ForgetRequest(
        rules=job.retention.policy,
        group_by="host",
        filter=snapshot_filter(tags=[job.tag]),
        prune=job.retention.prune,
    )
    result = forget(browser.session.reopened(), request, events)
    kept = sum(len(g.kept) for g in result.groups)
    summary = f"kept {kept}, forgot {count(result.removed, 'snapshot')}"
    if result.prune_error is not None:
        return Outcome(operations.FAILED, f"{summary}; prune failed: {result.prune_error}")
    if result.prune is not None:
        r = result.prune.report
        summary += f"; pruned {count(r.packs_deleted, 'pack')}, {format_bytes(r.bytes_freed)} freed"
    return Outcome(summary=summary)


def run_check(browser: Browser, events: WebEvents) -> Outcome:
    report = check(browser.session.reopened(), events)
    for finding in report.findings[:200]:
        events.note(f"{finding.severity}: {finding.object}: {finding.message}")
    errors = len(report.errors)
    warnings = len(report.findings) - errors
    summary = (
        f"{count(report.snapshots, 'snapshot')}, {count(report.packs, 'pack')}: "
        f"{count(errors, 'error')}, {count(warnings, 'warning')}"
    )
    return Outcome(operations.FAILED if errors else operations.OK, summary)


def run_restore(
    browser: Browser,
    snapshot: str,
    path: str,
    target: str,
    events: WebEvents,
    picked: tuple[str, ...] = (),
) -> Outcome:
    """The directory ``path`` of the snapshot (or only the entries ``picked`` in it) into
    ``target``."""
    base = "/" + path if path else ""
    include = tuple(f"{base}/{_literal(name)}" for name in picked)
    request = RestoreRequest(snapshot=snapshot, target=target, path="/" + path, include=include)
    result = restore(browser.session.reopened(), request, events)
    if result.summary is None:
        return Outcome(operations.PARTIAL, "archived data must be restored first: run it later")
    s = result.summary
    summary = f"restored {count(s.files, 'file')} to {target}"
    return Outcome(operations.PARTIAL if s.errors else operations.OK, summary)


def entry_name(name: str) -> str:
    """A name picked in a directory's listing: one component, nothing else."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise UsageError(f"{name!r} is not the name of an entry")
    return name


def _literal(name: str) -> str:
    """``name`` as an include line that matches it and nothing else (its wildcards escaped)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in name)


def allowed_target(target: str, roots: tuple[str, ...]) -> str:
    """``target`` if it is an absolute path at or below one of ``roots`` (symbolic links
    resolved: a link inside a root that points out of it does not count). UsageError else."""
    if "\0" in target:
        raise UsageError("a path must not contain NUL")
    if not roots:
        raise UsageError("restores are not allowed: the configuration has no serve.restore-roots")
    if not os.path.isabs(target):
        raise UsageError(f"{target!r} is not an absolute path")
    if any(part == ".." for part in target.split("/")):
        raise UsageError("a path must not contain '..'")
    real = os.path.realpath(target)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return real
    raise UsageError(f"{target} is outside the directories restores may write to")
