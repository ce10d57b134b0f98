"""cairn repair index|snapshots|undelete."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.repair import rebuild_index, repair
from cairn.app.snapshots import SnapshotFilter
from cairn.app.undelete import undelete as undelete_repository
from cairn.cli.common import as_of_required, filter_options, repo_options
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
        out.json({**report.__dict__, "requests": session.usage()})
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
        out.json(
            {
                "repaired": [r.__dict__ for r in results],
                "considered": done.considered,
                "requests": session.usage(),
            }
        )
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


@command.command("undelete")
@repo_options
@as_of_required
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be restored and hidden.")
def undelete(spec: RepoSpec, out: Output, dry_run: bool) -> int:
    """Make the repository what it was at --as-of TIME again (a versioned S3 bucket).

    Every object deleted or overwritten since TIME gets its version of TIME back on top, and
    every object added since gets a delete marker. Only versions are added: none is ever
    deleted, so this can be undone in the same way.

    \b
    Examples:
      cairn repair undelete -r s3://bucket/repo --as-of '2026-11-22 14:00' --dry-run
      cairn repair undelete -r s3://bucket/repo --as-of 2026-11-22T14:00:00+01:00
    """
    progress = TerminalProgress(out, "repair undelete")
    try:
        report = undelete_repository(spec, progress, dry_run=dry_run)
    finally:
        progress.close()
    when = report.time.astimezone().isoformat(timespec="seconds")
    if out.json_mode:
        out.json(
            {
                "as_of": report.time.isoformat(),
                "dry_run": dry_run,
                "restored": report.restored,
                "hidden": report.hidden,
                "counts": {"restored": len(report.restored), "hidden": len(report.hidden)},
                "requests": report.requests,
            }
        )
        return 0
    restore, hide = ("would restore", "would hide") if dry_run else ("restored", "hidden")
    for name in report.restored:
        out.line(f"{restore} {name}")
    for name in report.hidden:
        out.line(f"{hide} {name}")
    out.line(
        f"{restore} {count(len(report.restored), 'object')}, {hide} "
        f"{count(len(report.hidden), 'object')}: the repository as of {when}"
    )
    return 0
