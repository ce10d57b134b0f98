"""cairn restore: restore a snapshot, or a part of it, into a directory."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.defaults import help_text
from cairn.app.restore import READ_ORDERS, RESTORE_TIERS, RestoreRequest, Thaw, ThawRequest, restore
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import filter_options, reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_FAILED, EXIT_OK, EXIT_PENDING
from cairn.core.units import count, format_bytes, format_duration
from cairn.ui.money import money, prices_line
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress


@click.command("restore", cls=CairnCommand)
@repo_options
@reading_options
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
    "--read-order",
    type=click.Choice(READ_ORDERS),
    default=None,
    help="pack: read each pack's data once for many files at a time, many requests in flight "
    "(default on S3, where every request waits a round trip); file: file by file (default for "
    "a local directory).",
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
    read_order: str | None,
    wait: bool,
    restore_tier: str,
    restore_days: int,
) -> int:
    """Restore SNAPSHOT[:SUBPATH] into --target.

    Packs in an archive storage class (GLACIER, DEEP_ARCHIVE) are restored first: cairn asks
    for readable copies of exactly the packs needed, then exits with status 75 (run the same
    command again later) or, with --wait, waits for them.

    \b
    Examples:
      cairn restore -r /srv/backup latest --target /tmp/restore
      cairn restore -r /srv/backup 1a2b3c4d:/home/ann --target /tmp/ann --include '*.txt'
    """
    ref, _, subpath = snapshot.partition(":")
    request = RestoreRequest(
        snapshot=ref,
        target=target,
        path=subpath or "/",
        filter=flt,
        include=includes,
        exclude=excludes,
        verify=verify,
        threads=concurrency,
        read_order=read_order,
        thaw=ThawRequest(
            wait=wait,
            tier=restore_tier,
            days=restore_days,
        ),
    )
    session = open_session(spec)  # the use case loads the index after the snapshot
    progress = _Progress(out)
    try:
        result = restore(session, request, progress)
    finally:
        progress.close()
    summary, thaw = result.summary, result.thaw
    if summary is None:
        if out.json_mode:
            assert thaw is not None
            out.json(
                {
                    "snapshot": result.snapshot,
                    "target": target,
                    "thaw": thaw.report.as_dict(),
                    "requests": session.usage(),
                }
            )
        else:
            out.line(
                "run the same command again once they are readable, or add --wait "
                f"(exit status {EXIT_PENDING}: restore pending)"
            )
        return EXIT_PENDING
    if out.json_mode:
        doc = {"snapshot": result.snapshot, "target": target, **summary.as_dict()}
        if thaw is not None and thaw.report.packs:
            doc["thaw"] = thaw.report.as_dict()
        doc["requests"] = session.usage()  # of the store, the opening included
        out.json(doc)
    else:
        out.line(
            f"restored {count(summary.files, 'file')}, {count(summary.dirs, 'dir')}, {count(summary.others, 'other entry', 'other entries')} "
            f"({format_bytes(summary.bytes_written)}) from snapshot {result.snapshot[:8]} to {target}"
        )
        if verify:
            out.line(f"verified {count(summary.verified, 'file')}")
    if summary.errors:
        out.error(f"restore finished with {count(summary.errors, 'error')}", EXIT_FAILED)
        return EXIT_FAILED
    return EXIT_OK


class _Progress(TerminalProgress):
    """The restore's events on a terminal, with the archived packs it must have restored."""

    def __init__(self, out: Output) -> None:
        super().__init__(out, "restore")

    def thawing(self, thaw: Thaw) -> None:
        if not self.output.json_mode:
            _show_thaw(self.output, thaw)


def _show_thaw(out: Output, thaw: Thaw) -> None:
    t = thaw.report
    classes = ", ".join(f"{n} in {c}" for c, n in sorted(t.classes.items()))
    out.line(
        f"{count(t.packs, 'pack')} ({format_bytes(t.bytes)}) this restore reads are archived ({classes}): "
        f"restore requested now for {t.requested}, in progress for {t.restoring}, "
        f"readable: {t.ready}"
    )
    wait_text = f"up to {format_duration(t.hours * 3600)}" if t.hours else "unknown"
    out.line(
        f"  {t.tier} tier, copies readable for {t.days} days; expected wait: {wait_text}; "
        f"cost of this run's requests: {money(t.cost)}"
    )
    out.line(f"  ({prices_line(thaw.provider, thaw.pricing)})")
