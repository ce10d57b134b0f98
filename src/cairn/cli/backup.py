"""cairn backup: back up files and directories, or a stream, into a new snapshot."""

from __future__ import annotations

import sys

import click

from cairn.app.backup import BackupRequest, Snapshot, backup
from cairn.app.context import RepoSpec, open_session
from cairn.cli.common import repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from cairn.core.units import count, format_bytes, format_duration
from cairn.ui.escape import printable
from cairn.ui.money import backup_line
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress
from cairn.ui.usage import store_line

SHOWN_CHANGED = 10  # files changed while read that the summary names


@click.command("backup", cls=CairnCommand)
@repo_options
@click.argument("paths", nargs=-1)
@click.option("--stdin", "from_stdin", is_flag=True, help="Back up standard input as one file.")
@click.option(
    "--stdin-from-command",
    is_flag=True,
    help="Run the command given after -- and back up its output as one file.",
)
@click.option(
    "--stdin-filename",
    metavar="NAME",
    help="File name of the stream in the snapshot, stored as /NAME (default: stdin).",
)
@click.option(
    "-e", "--exclude", "excludes", multiple=True, metavar="PATTERN", help="Skip matching paths."
)
@click.option(
    "--exclude-file",
    "exclude_files",
    multiple=True,
    metavar="FILE",
    help="Read patterns from FILE.",
)
@click.option(
    "--iexclude",
    "iexcludes",
    multiple=True,
    metavar="PATTERN",
    help="Like --exclude, regardless of case.",
)
@click.option(
    "--iexclude-file",
    "iexclude_files",
    multiple=True,
    metavar="FILE",
    help="Like --exclude-file, regardless of case.",
)
@click.option(
    "--exclude-caches",
    is_flag=True,
    help="Skip what directories tagged with a valid CACHEDIR.TAG hold (but the tag).",
)
@click.option(
    "--exclude-if-present",
    multiple=True,
    metavar="NAME[:HEADER]",
    help="Skip what directories holding NAME (beginning with HEADER) hold, but NAME.",
)
@click.option(
    "--exclude-larger-than", metavar="SIZE", help="Skip files larger than SIZE (e.g. 100M)."
)
@click.option(
    "--files-from",
    "files_from",
    multiple=True,
    metavar="FILE",
    help="Back up the paths FILE lists, one a line ('#' comments; - is stdin).",
)
@click.option(
    "--files-from-verbatim",
    "files_from_verbatim",
    multiple=True,
    metavar="FILE",
    help="Back up the paths FILE lists, every line a path as it is.",
)
@click.option(
    "--files-from-raw",
    "files_from_raw",
    multiple=True,
    metavar="FILE",
    help="Back up the paths FILE lists, separated by NUL bytes.",
)
@click.option("-x", "--one-file-system", is_flag=True, help="Stay on the file system of each path.")
@click.option(
    "--parent",
    metavar="SNAPSHOT",
    help="Tell unchanged files by this snapshot rather than by the files cache.",
)
@click.option("--force", is_flag=True, help="Read every file again, even unchanged ones.")
@click.option(
    "--ignore-inode",
    is_flag=True,
    help="A file whose inode or ctime alone changed is unchanged.",
)
@click.option("--ignore-ctime", is_flag=True, help="A file whose ctime alone changed is unchanged.")
@click.option(
    "--time", "snapshot_time", metavar="'YYYY-MM-DD HH:MM:SS'", help="The snapshot's time."
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="List new and modified files (-vv: unchanged ones too).",
)
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeat or use a,b).")
@click.option("--host", default=None, help="Host name to record (default: this machine).")
@click.option("-n", "--dry-run", is_flag=True, help="Do everything but write to the repository.")
@click.option(
    "--read-concurrency",
    default=2,
    show_default=True,
    help="Files read at once: 2 reads small files in a process of their own (on one core: "
    "as the walk finds them) and a large one beside; 1 reads every file as the walk finds it; "
    "more reads small files on threads of their own (for network file systems).",
)
@click.option(
    "--no-scan",
    is_flag=True,
    help="Do not count the files while backing up (progress then has no total, percentage or ETA).",
)
def command(
    spec: RepoSpec,
    out: Output,
    paths: tuple[str, ...],
    excludes: tuple[str, ...],
    exclude_files: tuple[str, ...],
    iexcludes: tuple[str, ...],
    iexclude_files: tuple[str, ...],
    exclude_caches: bool,
    exclude_if_present: tuple[str, ...],
    exclude_larger_than: str | None,
    files_from: tuple[str, ...],
    files_from_verbatim: tuple[str, ...],
    files_from_raw: tuple[str, ...],
    one_file_system: bool,
    parent: str | None,
    force: bool,
    ignore_inode: bool,
    ignore_ctime: bool,
    snapshot_time: str | None,
    verbose: int,
    tags: tuple[str, ...],
    host: str | None,
    dry_run: bool,
    read_concurrency: int,
    from_stdin: bool,
    stdin_from_command: bool,
    stdin_filename: str | None,
    no_scan: bool,
) -> int:
    """Back up PATHS into a new snapshot.

    With --stdin, back up standard input instead; with --stdin-from-command, run the command
    given after -- and back up its output (no snapshot if the command fails).

    \b
    Examples:
      cairn backup -r /srv/backup ~/Documents ~/Pictures
      cairn backup -r /srv/backup --exclude '*.tmp' --tag daily /etc /home
      pg_dump mydb | cairn backup -r /srv/backup --stdin --stdin-filename mydb.sql
    """
    if stdin_from_command and not paths:
        raise UsageError("--stdin-from-command needs a command after --")
    lists = [
        *(("lines", f) for f in files_from),
        *(("verbatim", f) for f in files_from_verbatim),
        *(("raw", f) for f in files_from_raw),
    ]
    progress = TerminalProgress(out, "backup")
    request = BackupRequest(
        paths=() if stdin_from_command else paths,
        files_from=lists,
        excludes=excludes,
        exclude_files=exclude_files,
        iexcludes=iexcludes,
        iexclude_files=iexclude_files,
        exclude_caches=exclude_caches,
        exclude_if_present=exclude_if_present,
        exclude_larger_than=exclude_larger_than,
        one_file_system=one_file_system,
        parent=parent,
        force=force,
        ignore_inode=ignore_inode,
        ignore_ctime=ignore_ctime,
        time=snapshot_time,
        verbose=verbose,
        on_file=lambda path, status: out.line(f"{status:<10}{printable(path)}"),
        tags=tags,
        host=host,
        dry_run=dry_run,
        read_concurrency=read_concurrency,
        stdin=sys.stdin.buffer if from_stdin else None,
        command=paths if stdin_from_command else (),
        stream_name=stdin_filename,
        scan=not no_scan and progress.shows_totals,
    )
    try:
        result = backup(open_session(spec), request, progress)
    finally:
        progress.close()
    snap = result.snapshot
    if out.json_mode:
        doc = snap.to_json()
        doc["dry_run"] = dry_run
        if result.estimate is not None:
            doc["estimate"] = result.estimate
        doc["warnings"] = [
            {"path": p.decode("utf-8", "surrogateescape"), "message": m}
            for p, m in progress.warnings
        ]
        doc["changed_while_read"] = [
            p.decode("utf-8", "surrogateescape") for p in result.changed_while_read
        ]
        if result.locks is not None:
            doc["object_lock"] = result.locks.as_dict()
        out.json(doc)
    else:
        _print_summary(out, snap, dry_run, result.changed_while_read)
        if result.locks is not None:
            out.line(result.locks.describe())
        if result.estimate is not None and result.estimate.get("local"):
            stored = format_bytes(result.estimate["stored"])
            out.line(f"a real backup: stores {stored} more; {result.estimate['prices']}")
        elif result.estimate is not None:
            out.line(f"a real backup: {backup_line(result.estimate)}")
            out.line(
                f"  ({result.estimate['prices']}; data packs in {result.estimate['data_class']})"
            )
    s = snap.summary
    if s.errors:
        what = count(s.errors, "entry", "entries")
        out.warning(f"{what} could not be read; the snapshot lacks them")
    if s.files_changed_while_read:
        what = count(s.files_changed_while_read, "file")
        out.warning(f"{what} changed while being read; the snapshot may hold them inconsistent")
    return EXIT_PARTIAL if result.partial else EXIT_OK


def _print_summary(out: Output, snap: Snapshot, dry_run: bool, changed: list[bytes]) -> None:
    s = snap.summary
    out.line(f"files: {s.files_new} new, {s.files_changed} changed, {s.files_unchanged} unchanged")
    out.line(f"dirs:  {s.dirs_new} new, {s.dirs_unchanged} unchanged")
    out.line(
        f"data:  {format_bytes(s.bytes_read)} read of {format_bytes(s.bytes_total)}, "
        f"{format_bytes(s.bytes_added)} added, {format_bytes(s.bytes_stored)} stored "
        f"in {count(s.packs_written, 'pack')}"
    )
    if s.requests:
        out.line(store_line(s.requests))
    if s.files_changed_while_read:
        names = ", ".join(printable(p) for p in changed[:SHOWN_CHANGED])
        more = len(changed) - SHOWN_CHANGED
        if more > 0:
            names += f" and {more} more"
        what = count(s.files_changed_while_read, "file")
        out.line(f"changed while read: {what}, stored as read: {names}")
    if dry_run:
        out.line(f"dry run: nothing written ({format_duration(s.duration)})")
    else:
        out.line(f"snapshot {snap.id[:8]} saved ({format_duration(s.duration)})")
