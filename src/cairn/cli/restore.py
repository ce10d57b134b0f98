"""cairn restore: restore a snapshot, or a part of it, into a directory."""

from __future__ import annotations

import click

from cairn.app.context import (
    RepoSpec,
    open_session,
)
from cairn.app.defaults import defaults_for, help_text
from cairn.cli.billing import money, prices_line, pricing
from cairn.cli.common import filter_options, repo_options
from cairn.core.errors import EXIT_FAILED, EXIT_OK, EXIT_PENDING
from cairn.core.units import format_bytes, format_duration
from cairn.ops.cost.prices import Provider
from cairn.ops.excludes import PathMatcher
from cairn.ops.restore import RestoreOptions, Restorer
from cairn.ops.snapshots import SnapshotFilter, resolve
from cairn.ops.thaw import (
    POLL_SECONDS,
    ThawOptions,
    ThawReport,
    packs_of,
    request_thaw,
    wait_for_thaw,
)
from cairn.storage.archive import RESTORE_TIERS
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress


@click.command("restore")
@repo_options
@filter_options
@click.argument("snapshot")
@click.option("-t", "--target", required=True, metavar="DIR", help="Directory to restore into.")
@click.option(
    "-i",
    "--include",
    "includes",
    multiple=True,
    metavar="PATTERN",
    help="Restore only matching paths.",
)
@click.option(
    "-e", "--exclude", "excludes", multiple=True, metavar="PATTERN", help="Skip matching paths."
)
@click.option("--verify", is_flag=True, help="Read the restored files back and compare them.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help=f"Threads writing files ({help_text('restore_threads')}); small files get threads of "
    f"their own ({help_text('small_file_threads')}).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="If data is archived (GLACIER, DEEP_ARCHIVE), wait for its restore instead of exiting 75.",
)
@click.option(
    "--restore-tier",
    type=click.Choice(RESTORE_TIERS),
    default="Standard",
    show_default=True,
    help="Speed (and price) of restoring archived packs.",
)
@click.option(
    "--restore-days",
    type=click.IntRange(1, 365),
    default=7,
    show_default=True,
    help="Days the restored copies of archived packs stay readable.",
)
def command(
    spec: RepoSpec,
    out: Output,
    flt: SnapshotFilter,
    snapshot: str,
    target: str,
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    verify: bool,
    concurrency: int,
    wait: bool,
    restore_tier: str,
    restore_days: int,
) -> int:
    """Restore SNAPSHOT[:SUBPATH] into --target.

    Packs in an archive storage class (GLACIER, DEEP_ARCHIVE) are restored first: cairn asks
    for readable copies of exactly the packs needed, then exits with status 75 (run the same
    command again later) or, with --wait, waits for them."""
    ref, _, subpath = snapshot.partition(":")
    session = open_session(spec, load_index=False)
    snap = resolve(session.repo, ref, flt)
    session.repo.load_index()  # after the snapshot: a newer one may use newer index objects
    options = RestoreOptions(
        include=PathMatcher(includes),
        exclude=PathMatcher(excludes),
        verify=verify,
        workers=concurrency or defaults_for(spec.resolved_url()).restore_threads,
        small_file_workers=defaults_for(spec.resolved_url()).small_file_threads,
    )
    progress = TerminalProgress(out, "restore")
    thaw = None
    try:
        restorer = Restorer(session.repo, progress, options)
        plan = restorer.plan_stream(snap, subpath or "/")  # trees read as the restore goes
        archive = session.repo.storage.archive
        if archive is not None:
            entries = list(plan)
            plan = iter(entries)
            thaw_options = ThawOptions(days=restore_days, tier=restore_tier)
            provider, why = pricing(spec.resolved_url())
            needed = packs_of(restorer.data_reads(entries))
            thaw = request_thaw(archive, needed, thaw_options, provider)
            if thaw.pending:
                if not out.json_mode:
                    _show_thaw(out, thaw, provider, why, wait)
                if not wait:
                    if out.json_mode:
                        out.json({"snapshot": snap.id, "target": target, "thaw": thaw.as_dict()})
                    return EXIT_PENDING
                wait_for_thaw(archive, thaw, thaw_options)
                out.line("the restored copies are readable: restoring")
        summary = restorer.execute(plan, target)
    finally:
        progress.close()
    if out.json_mode:
        doc = {"snapshot": snap.id, "target": target, **summary.as_dict()}
        if thaw is not None and thaw.packs:
            doc["thaw"] = thaw.as_dict()
        out.json(doc)
    else:
        out.line(
            f"restored {summary.files} files, {summary.dirs} dirs, {summary.others} other entries "
            f"({format_bytes(summary.bytes_written)}) from snapshot {snap.id[:8]} to {target}"
        )
        if verify:
            out.line(f"verified {summary.verified} files")
    if summary.errors:
        out.error(f"restore finished with {summary.errors} errors")
        return EXIT_FAILED
    return EXIT_OK


def _show_thaw(out: Output, t: ThawReport, provider: Provider, why: str, wait: bool) -> None:
    classes = ", ".join(f"{n} in {c}" for c, n in sorted(t.classes.items()))
    out.line(
        f"{t.packs} packs ({format_bytes(t.bytes)}) this restore reads are archived ({classes}): "
        f"restore requested now for {t.requested}, in progress for {t.restoring}, "
        f"readable: {t.ready}"
    )
    wait_text = f"up to {format_duration(t.hours * 3600)}" if t.hours else "unknown"
    out.line(
        f"  {t.tier} tier, copies readable for {t.days} days; expected wait: {wait_text}; "
        f"cost of this run's requests: {money(t.cost)}"
    )
    out.line(f"  ({prices_line(provider, why)})")
    if wait:
        every = format_duration(POLL_SECONDS[t.tier])
        out.line(f"waiting for the restored copies (checking every {every})")
    else:
        out.line(
            "run the same command again once they are readable, or add --wait "
            f"(exit status {EXIT_PENDING}: restore pending)"
        )
