"""cairn prune: free the space of data no snapshot uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.prune import PruneReport, PruneRequest, prune
from cairn.cli.common import repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import UsageError
from cairn.core.units import count, format_bytes, parse_seconds, parse_size
from cairn.ui.money import prune_cost_text
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress
from cairn.ui.usage import store_line


def parse_fraction(text: str) -> float:
    """'10%' or '0.1' -> 0.1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"invalid fraction {text!r} (use e.g. 50%)") from None
    if not 0 <= value <= 1:
        raise UsageError(f"{text} is not between 0% and 100%")
    return value


def prune_options(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--max-unused",
        default="65%",
        show_default=True,
        help="Repack a pack when more than this share of it is unused.",
    )(f)
    f = click.option(
        "--max-wait",
        default="15m",
        show_default=True,
        metavar="DURATION",
        help="Wait this long for backups that were running when the prune began deleting, "
        "then postpone.",
    )(f)
    return click.option(
        "--max-repack-size", metavar="SIZE", help="Read at most this much for repacking."
    )(f)


def make_request(
    max_unused: str, max_repack_size: str | None, dry_run: bool, max_wait: str = "15m"
) -> PruneRequest:
    return PruneRequest(
        max_unused=parse_fraction(max_unused),
        max_repack_bytes=parse_size(max_repack_size) if max_repack_size else None,
        dry_run=dry_run,
        max_wait=parse_seconds(max_wait),
    )


def show_report(out: Output, r: PruneReport, cost: dict[str, Any] | None = None) -> None:
    """The report; with ``cost`` (a dry run's estimate), what the prune would cost and save."""
    if out.json_mode:
        out.json({**r.as_dict(), **({"cost": cost} if cost is not None else {})})
        return
    verb = "would" if r.dry_run else "did"
    out.line(
        f"{count(r.snapshots, 'snapshot')} use {count(r.blobs_used, 'blob')} in {count(r.packs_total, 'pack')} "
        f"({format_bytes(r.bytes_total)})"
    )
    out.line(
        f"{verb} delete {count(r.packs_deleted, 'unused pack')} and {count(r.orphan_packs, 'pack')} no index lists"
    )
    out.line(
        f"{verb} repack {count(r.packs_repacked, 'pack')}: read {format_bytes(r.bytes_repack_read)}, "
        f"write {format_bytes(r.bytes_repack_written)}"
    )
    out.line(
        f"{verb} free {format_bytes(r.bytes_freed)}; {format_bytes(r.unused_bytes_kept)} "
        "unused stays in packs below the repack threshold"
    )
    if r.freed_after:
        when = datetime.fromisoformat(r.freed_after)
        out.line(
            f"object lock: what was deleted stays, locked, until {when:%Y-%m-%d %H:%M} UTC at "
            "the latest; the space is freed then (by the bucket's lifecycle rule)"
        )
    if r.requests:
        out.line(store_line(r.requests, "requests (estimated)" if r.dry_run else "store"))
    if cost is not None:
        out.line(f"cost: {prune_cost_text(cost)}")
        out.line(f"  ({cost['prices']})")
    if r.packs_rescued:
        out.line(
            f"kept {count(r.packs_rescued, 'pack')} that backups running meanwhile came to use"
        )
    if r.postponed:
        out.line(f"deleting postponed: {r.postponed}; run prune again later")


@click.command("prune", cls=CairnCommand)
@repo_options
@prune_options
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be done.")
def command(
    spec: RepoSpec,
    out: Output,
    max_unused: str,
    max_repack_size: str | None,
    max_wait: str,
    dry_run: bool,
) -> int:
    """Delete data no snapshot uses and repack packs that are mostly unused.

    Safe while other hosts back up: backups never wait for a prune, and a prune waits (at
    most --max-wait) only for the backups already running when it starts deleting.

    \b
    Examples:
      cairn prune -r /srv/backup
      cairn prune -r /srv/backup --dry-run --max-unused 50%
    """
    request = make_request(max_unused, max_repack_size, dry_run, max_wait)
    session = open_session(spec)
    progress = TerminalProgress(out, "repack")
    try:
        result = prune(session, request, progress)
    finally:
        progress.close()
    show_report(out, result.report, result.estimate)
    return 0
