"""cairn repair index|snapshots."""

from __future__ import annotations

import click

from cairn.app.check import rebuild_index, repair
from cairn.app.context import RepoSpec, open_session
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import filter_options, repo_options
from cairn.cli.helpformat import CairnGroup
from cairn.core.units import count
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress


@click.group("repair", cls=CairnGroup)
def command() -> None:
    """Repair a damaged repository."""


@command.command("index")
@repo_options
@click.option("--read-data", is_flag=True, help="Also verify every blob; leave damaged ones out.")
def index(spec: RepoSpec, out: Output, read_data: bool) -> int:
    """Rebuild the index from the packs.

    \b
    Examples:
      cairn repair index -r /srv/backup
      cairn repair index -r /srv/backup --read-data
    """
    session = open_session(spec)
    progress = TerminalProgress(out, "repair index")
    try:
        report = rebuild_index(session, progress, read_data=read_data)
    finally:
        progress.close()
    if out.json_mode:
        out.json(report.__dict__)
    else:
        good = report.packs - len(report.packs_unreadable)
        out.line(f"indexed {count(report.blobs, 'blob')} in {count(good, 'pack')}")
        out.line(
            f"left out {len(report.packs_unreadable)} unreadable packs, {report.blobs_damaged} damaged blobs"
        )
        out.line(
            f"index objects: {report.index_objects_written} written, {report.index_objects_removed} removed"
        )
    return 0


@command.command("snapshots")
@repo_options
@filter_options
@click.argument("snapshot_ids", nargs=-1)
@click.option("--forget", is_flag=True, help="Delete the damaged originals.")
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be removed.")
def snapshots(
    spec: RepoSpec,
    out: Output,
    flt: SnapshotFilter,
    snapshot_ids: tuple[str, ...],
    forget: bool,
    dry_run: bool,
) -> int:
    """Write new snapshots without the files whose data is lost.

    \b
    Examples:
      cairn repair snapshots -r /srv/backup --dry-run
      cairn repair snapshots -r /srv/backup --forget
    """
    session = open_session(spec)
    progress = TerminalProgress(out, "repair snapshots")
    try:
        done = repair(session, progress, snapshot_ids, flt, forget=forget, dry_run=dry_run)
    finally:
        progress.close()
    results = done.repaired
    if out.json_mode:
        out.json([r.__dict__ for r in results])
        return 0
    for r in results:
        if r.damaged:
            verb = "would be removed" if dry_run else "removed"
            out.line(f"snapshot {r.original[:8]}: the object is damaged; {verb}")
            continue
        new = f"-> {r.new[:8]}" if r.new else "(dry run)"
        out.line(
            f"snapshot {r.original[:8]} {new}: {count(len(r.removed), 'entry', 'entries')} removed"
        )
    out.line(f"{len(results)} of {count(done.considered, 'snapshot')} needed repair")
    return 0
