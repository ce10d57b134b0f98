"""cairn dump: write a file of a snapshot to standard output, or a directory as a tar stream."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.dump import DumpRequest, dump
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import filter_options, reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_FAILED, EXIT_OK, CairnError, UsageError
from cairn.core.units import count, format_bytes
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress


@click.command("dump", cls=CairnCommand)
@repo_options
@reading_options
@filter_options
@click.argument("snapshot")
@click.argument("path")
@click.option("-o", "--target", metavar="FILE", help="Write to FILE instead of standard output.")
def command(
    spec: RepoSpec, out: Output, flt: SnapshotFilter, snapshot: str, path: str, target: str | None
) -> int:
    """Write the file at PATH in SNAPSHOT to standard output (a directory: as a tar stream).

    PATH may be given with or without its leading slash: `cairn dump latest db.sql | psql`.

    \b
    Examples:
      cairn dump -r /srv/backup latest /etc/hosts
      cairn dump -r /srv/backup latest /home/ann > ann.tar
    """
    if target is None:
        if out.json_mode:
            raise UsageError("--json needs --target: standard output carries the data")
        if sys.stdout.isatty():
            raise UsageError("standard output is a terminal: redirect it or use --target FILE")
    session = open_session(spec)  # the use case loads the index after the snapshot
    # Only with --target may a progress bar share the terminal; warnings are always shown.
    progress = TerminalProgress(out if target else Output(quiet=True), "dump")
    try:
        result = dump(
            session, DumpRequest(snapshot, path, lambda: _destination(target), flt), progress
        )
    finally:
        progress.close()
    summary = result.summary
    failed = EXIT_FAILED if summary.errors else EXIT_OK
    if summary.errors:
        out.error(
            f"{count(summary.errors, 'entry', 'entries')} of the snapshot's trees were left out: see warnings",
            EXIT_FAILED,
        )
    if target is None:
        return failed
    if out.json_mode:
        doc = {"snapshot": result.snapshot, "path": path, "target": target, **summary.as_dict()}
        out.json({**doc, "requests": session.usage()})
    elif summary.kind == "tar":
        out.line(
            f"wrote a tar of {count(summary.files, 'file')}, {count(summary.dirs, 'dir')}, "
            f"{count(summary.others, 'other entry', 'other entries')} ({format_bytes(summary.bytes)}) from snapshot {result.snapshot[:8]} "
            f"to {target}"
        )
    else:
        out.line(
            f"wrote {format_bytes(summary.bytes)} from snapshot {result.snapshot[:8]} to {target}"
        )
    return failed


@contextlib.contextmanager
def _destination(target: str | None) -> Iterator[BinaryIO]:
    """Where the dump goes. A write that fails (a full disk) is a one-line error; a partial
    regular file is removed, never a device, FIFO or anything else named as the target."""
    where = target or "standard output"
    try:
        if target is None:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
            return
        try:
            f = open(target, "wb")  # noqa: SIM115 (closed below, removed if the dump fails)
        except OSError as e:
            raise UsageError(f"cannot write {target}: {e.strerror}") from None
        made = os.fstat(f.fileno())
        try:
            with f:
                yield f
        except BaseException:
            if stat.S_ISREG(made.st_mode):
                _remove_if_same(target, made)  # never leave a partial file that looks complete
            raise
    except BrokenPipeError:
        raise
    except OSError as e:
        raise CairnError(f"cannot write {where}: {e.strerror or e}") from None


def _remove_if_same(path: str, made: os.stat_result) -> None:
    with contextlib.suppress(OSError):
        now = os.stat(path, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (made.st_dev, made.st_ino):
            os.unlink(path)
