"""cairn forget: remove snapshots by retention policy or by id, then optionally prune."""

from __future__ import annotations

from typing import Any

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.forget import (
    DEFAULT_GROUP_BY,
    UNLIMITED,
    ForgetRequest,
    GroupResult,
    Policy,
    forget,
)
from cairn.app.snapshots import Snapshot, SnapshotFilter
from cairn.cli.common import filter_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.units import count
from cairn.ui.escape import printable
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress


class KeepCount(click.ParamType):
    name = "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if str(value).lower() == "unlimited":
            return UNLIMITED
        try:
            n = int(value)
        except ValueError:
            self.fail(f"{value!r} is not a count (a number or 'unlimited')", param, ctx)
        if n < 0:
            self.fail("must be 0 or more, or 'unlimited'", param, ctx)
        return n


def keep_option(name: str, short: str, what: str) -> Any:
    return click.option(
        short,
        f"--keep-{name}",
        name,
        type=KeepCount(),
        default=0,
        help=f"Keep the newest snapshot of each of the last N {what} that have one.",
    )


def within_option(name: str, what: str) -> Any:
    return click.option(
        f"--keep-within-{name}",
        f"within_{name}",
        metavar="DURATION",
        help=f"Keep the newest snapshot of each {what} within DURATION of the group's newest.",
    )


@click.command("forget", cls=CairnCommand)
@repo_options
@filter_options
@click.option(
    "-l", "--keep-last", "last", type=KeepCount(), default=0, help="Keep the N newest snapshots."
)
@keep_option("hourly", "-H", "hours")
@keep_option("daily", "-d", "days")
@keep_option("weekly", "-w", "ISO weeks")
@keep_option("monthly", "-m", "months")
@keep_option("yearly", "-y", "years")
@click.option(
    "--keep-within",
    "within",
    metavar="DURATION",
    help="Keep every snapshot newer than DURATION (e.g. 2y5m7d3h) before the group's newest.",
)
@within_option("hourly", "hour")
@within_option("daily", "day")
@within_option("weekly", "ISO week")
@within_option("monthly", "month")
@within_option("yearly", "year")
@click.option(
    "--keep-tag",
    "keep_tags",
    multiple=True,
    metavar="TAG[,TAG]",
    help="Keep every snapshot that has all these tags (repeatable: any of the lists).",
)
@click.option(
    "--group-by",
    default=None,
    metavar="FIELDS",
    help=f"Apply the policy to each group of host, paths, tags ('' for one group) "
    f"[default: {DEFAULT_GROUP_BY}].",
)
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be removed, and why.")
@click.option("--prune", is_flag=True, help="Then run `cairn prune` if any snapshot was removed.")
@click.argument("ids", nargs=-1, metavar="[ID]...")
def command(
    spec: RepoSpec,
    out: Output,
    flt: SnapshotFilter,
    within: str | None,
    keep_tags: tuple[str, ...],
    group_by: str | None,
    dry_run: bool,
    prune: bool,
    ids: tuple[str, ...],
    **counts: Any,
) -> int:
    """Remove snapshots: the ones named by ID, or those a retention policy does not keep.

    Snapshots are grouped (by default by host and paths) and each group keeps the snapshots
    any rule keeps. Only snapshot objects are deleted; `--prune` (or `cairn prune` later)
    frees the data no remaining snapshot uses.

    \b
    Examples:
      cairn forget -r /srv/backup 1a2b3c4d
      cairn forget -r /srv/backup --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prune
    """
    periods = {
        k.removeprefix("within_"): counts.pop(k) for k in list(counts) if k.startswith("within_")
    }
    request = ForgetRequest(
        ids=ids,
        counts=counts,
        within=within,
        within_periods={rule: text for rule, text in periods.items() if text is not None},
        keep_tags=keep_tags,
        group_by=group_by,
        filter=flt,
        dry_run=dry_run,
        prune=prune,
    )
    session = open_session(spec)
    progress = TerminalProgress(out, "repack")
    try:
        result = forget(session, request, progress)
    finally:
        progress.close()
    groups = result.groups
    doc: dict[str, Any] = {
        "dry_run": dry_run,
        "policy": result.policy.describe() if result.policy is not None else None,
        "groups": [group_json(g) for g in groups],
        "removed": result.removed,
        "would_remove": result.would_remove,
        "prune": None,
    }
    if not out.json_mode:
        show_groups(out, groups, result.policy, dry_run)
    if result.prune_error is not None:  # the snapshots are gone all the same: say so, then fail
        if out.json_mode:
            out.json({**doc, "prune": {"error": str(result.prune_error)}})
        raise result.prune_error
    if result.prune is not None:
        doc["prune"] = result.prune.report.as_dict()
        if not out.json_mode:
            from cairn.cli.prune import show_report  # with --prune only

            show_report(out, result.prune.report)
    elif prune and not out.json_mode:
        out.line(
            "prune would run after the removal (preview it then with `cairn prune --dry-run`)"
            if dry_run and result.would_remove
            else "nothing was removed, so prune did not run"
        )
    if result.kept_until is not None:
        doc["kept_until"] = result.kept_until.isoformat()
        if not out.json_mode:
            out.line(
                f"object lock: the removed snapshot objects stay, locked, until "
                f"{result.kept_until:%Y-%m-%d %H:%M} UTC at the latest"
            )
    doc["requests"] = result.requests if result.requests is not None else session.usage()
    if out.json_mode:
        out.json(doc)
    return 0


def group_json(group: GroupResult[Snapshot]) -> dict[str, Any]:
    key = group.key
    return {
        "host": key.host,
        "paths": list(key.paths) if key.paths is not None else None,
        "tags": list(key.tags) if key.tags is not None else None,
        "keep": [{**d.snapshot.to_json(), "reasons": d.reasons} for d in group.decisions if d.keep],
        "remove": [d.snapshot.to_json() for d in group.decisions if not d.keep],
    }


def show_groups(
    out: Output, groups: list[GroupResult[Snapshot]], policy: Policy | None, dry_run: bool
) -> None:
    if policy is not None:
        out.line(f"policy: {policy.describe()}")
    if not groups:
        out.line("no snapshots match")
    for group in groups:
        kept, removed = len(group.kept), len(group.removed)
        title = "" if policy is None else f"{group.key.describe()}: "
        out.line("")
        out.line(f"{title}keep {kept}, remove {removed}")
        rows = [
            [
                s.id[:8],
                s.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                printable(s.host),
                ",".join(printable(t) for t in s.tags),
                "\n".join(printable(p) for p in s.paths),
                "keep" if d.keep else "remove",
                "; ".join(d.reasons),
            ]
            for d in reversed(group.decisions)
            for s in [d.snapshot]
        ]
        if not out.quiet:
            out.table(["ID", "Time", "Host", "Tags", "Paths", "Action", "Reasons"], rows)
    total = sum(len(g.removed) for g in groups)
    out.line("")
    out.line(
        f"would remove {count(total, 'snapshot')} (dry run)"
        if dry_run
        else f"removed {count(total, 'snapshot')}"
    )
