"""The backup use case: paths or a stream into a new snapshot, and what a dry run would cost.

The front end says what to back up (``BackupRequest``); this builds the exclude matcher and the
stream sources, runs the backup under the repository lock (ops/backup), commits the files
cache, and returns the snapshot with, for a dry run, the cost estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cairn.app.budget import write_budget
from cairn.app.context import Session
from cairn.app.cost import backup_estimate
from cairn.app.events import Events
from cairn.core.errors import UsageError
from cairn.core.units import count
from cairn.model.snapshot import Snapshot
from cairn.ops.backup.archiver import BackupOptions
from cairn.ops.backup.snapshot_writer import BackupRequest as Run
from cairn.ops.backup.snapshot_writer import run_backup
from cairn.ops.excludes import PathMatcher, read_pattern_file
from cairn.ops.sources.stream import CommandSource, PipeSource, StreamItem, stream_path

__all__ = ["BackupRequest", "BackupResult", "Snapshot", "backup"]


@dataclass(frozen=True)
class BackupRequest:
    paths: Sequence[str] = ()
    excludes: Sequence[str] = ()  # patterns
    exclude_files: Sequence[str] = ()  # files of patterns
    one_file_system: bool = False
    tags: Sequence[str] = ()  # each may be "a,b"
    host: str | None = None
    dry_run: bool = False
    read_concurrency: int = 2  # files read at once
    # a stream instead of paths: standard input (a binary file), or a command's output
    stdin: BinaryIO | None = None
    command: Sequence[str] = ()
    stream_name: str | None = None  # its file name in the snapshot (default: stdin)
    streams: Sequence[StreamItem] = ()  # already made (jobs' database dumps and the like)
    scan: bool = True  # count the paths on a thread of their own, for progress's total


@dataclass
class BackupResult:
    snapshot: Snapshot
    saved: bool  # False on a dry run
    estimate: dict[str, Any] | None = None  # a dry run's cost (app/cost.py)
    # files that changed while they were read: stored as read, possibly torn
    changed_while_read: list[bytes] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """Some entries could not be read (the snapshot lacks them), or some files changed
        while they were read (the snapshot may hold them torn)."""
        s = self.snapshot.summary
        return bool(s.errors or s.files_changed_while_read)

    def problems(self) -> list[str]:
        """What makes the backup partial, one phrase each (none if it is not)."""
        s = self.snapshot.summary
        out = []
        if s.errors:
            out.append(f"{count(s.errors, 'entry', 'entries')} could not be read")
        if s.files_changed_while_read:
            out.append(f"{count(s.files_changed_while_read, 'file')} changed while being read")
        return out


def backup(session: Session, request: BackupRequest, events: Events) -> BackupResult:
    if request.read_concurrency < 1:
        raise UsageError("--read-concurrency must be at least 1")
    patterns = list(request.excludes)
    for f in request.exclude_files:
        patterns += read_pattern_file(f)
    streams = list(request.streams) or _streams(request)
    if streams and (patterns or request.one_file_system):
        raise UsageError("--exclude, --exclude-file and --one-file-system do not apply to streams")
    if not streams and not request.paths:
        raise UsageError("nothing to back up: give paths, --stdin or --stdin-from-command")
    budget = write_budget(
        session.spec.store.memory_limit,
        session.repo.config.pack_size,
        session.spec.store.uploads_for(session.url),
        readers=1 if streams else request.read_concurrency,
        spool=session.defaults.spool_packs,
    )
    events.status(budget.describe())
    run = Run(
        paths=[] if streams else list(request.paths),
        streams=streams,
        tags=[t for tag in request.tags for t in tag.split(",") if t],
        host=request.host,
        dry_run=request.dry_run,
        uploads=budget.uploads,
        spool=budget.spool,
        options=BackupOptions(
            excludes=PathMatcher(patterns),
            one_file_system=request.one_file_system,
            workers=request.read_concurrency,
            scan=request.scan,
        ),
    )
    cache = session.files_cache(read_only=request.dry_run) if not streams else None
    try:
        result = run_backup(
            session.repo, run, events, cache, session.journal(), session.meter, session.started
        )
    finally:
        if cache is not None:
            cache.close()
    estimate = backup_estimate(session, result.snapshot.summary) if request.dry_run else None
    return BackupResult(result.snapshot, result.saved, estimate, result.changed_while_read)


def _streams(request: BackupRequest) -> list[StreamItem]:
    name = request.stream_name
    filename = name or "stdin"
    if request.stdin is not None and request.command:
        raise UsageError("--stdin and --stdin-from-command cannot be combined")
    if request.command:
        return [StreamItem(stream_path(filename), CommandSource(list(request.command)))]
    if request.stdin is not None:
        if request.paths:
            raise UsageError("--stdin backs up standard input: give no paths")
        if request.stdin.isatty():
            raise UsageError("--stdin: standard input is a terminal, not a stream")
        return [StreamItem(stream_path(filename), PipeSource(request.stdin))]
    if name is not None:
        raise UsageError("--stdin-filename needs --stdin or --stdin-from-command")
    return []
