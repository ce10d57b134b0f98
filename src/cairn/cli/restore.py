"""cairn restore: restore a snapshot, or a part of it, into a directory."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.cli.common import filter_options, repo_options
from cairn.core.errors import EXIT_FAILED, EXIT_OK
from cairn.core.units import format_bytes
from cairn.ops.excludes import PathMatcher
from cairn.ops.restore import RestoreOptions, Restorer
from cairn.ops.snapshots import SnapshotFilter, resolve
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
@click.option("--concurrency", default=4, show_default=True, help="Files written at once.")
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
) -> int:
    """Restore SNAPSHOT[:SUBPATH] into --target."""
    ref, _, subpath = snapshot.partition(":")
    session = open_session(spec)
    snap = resolve(session.repo, ref, flt)
    options = RestoreOptions(
        include=PathMatcher(includes),
        exclude=PathMatcher(excludes),
        verify=verify,
        workers=max(1, concurrency),
    )
    progress = TerminalProgress(out, "restore")
    try:
        summary = Restorer(session.repo, progress, options).run(snap, subpath or "/", target)
    finally:
        progress.close()
    if out.json_mode:
        out.json({"snapshot": snap.id, "target": target, **summary.as_dict()})
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
