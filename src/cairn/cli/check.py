"""cairn check: verify the repository's structure and, on request, its data."""

from __future__ import annotations

import click

from cairn.app.check import check
from cairn.app.context import RepoSpec, open_session
from cairn.cli.common import reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_FAILED, EXIT_OK
from cairn.core.units import count, format_bytes
from cairn.ui.escape import printable
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress
from cairn.ui.usage import store_line


@click.command("check", cls=CairnCommand)
@repo_options
@reading_options
@click.option("--read-data", is_flag=True, help="Read every pack and verify every blob.")
@click.option("--read-data-subset", metavar="N%|n/m", help="Read only a share of the packs.")
def command(spec: RepoSpec, out: Output, read_data: bool, read_data_subset: str | None) -> int:
    """Check that every snapshot can be restored.

    \b
    Examples:
      cairn check -r /srv/backup
      cairn check -r /srv/backup --read-data-subset 10%
    """
    session = open_session(spec)
    progress = TerminalProgress(out, "check")
    try:
        report = check(session, progress, read_data, read_data_subset)
    finally:
        progress.close()
    if out.json_mode:
        out.json({**report.as_dict(), "requests": session.usage()})
    else:
        for f in report.findings:
            out.line(f"{f.severity}: {printable(f.object)}: {f.message}")
        for snap_id, paths in sorted(report.damaged.items()):
            out.line(
                f"snapshot {snap_id[:8]} is damaged: {count(len(paths), 'file or directory', 'files or directories')}"
            )
            for p in paths[:20]:
                out.line(f"  {printable(p)}")
            if len(paths) > 20:
                out.line(f"  ... and {len(paths) - 20} more")
        read = (
            f", read {count(report.packs_read, 'pack')} ({format_bytes(report.bytes_read)}, "
            f"{count(report.blobs_read, 'blob')})"
            if read_data or read_data_subset
            else ""
        )
        out.line(
            f"checked {count(report.snapshots, 'snapshot')} and {count(report.packs, 'pack')}{read}"
        )
        if report.retention_checked:
            what = count(report.retention_checked, "object")
            out.line(f"object lock: the retention of {what} checked")
        out.line(store_line(session.usage()))
        if report.errors:
            out.line(f"{count(len(report.errors), 'error')}: see `cairn repair`")
        else:
            out.line("no errors found")
    return EXIT_FAILED if report.errors else EXIT_OK
