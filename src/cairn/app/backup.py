"""The backup use case: paths or a stream into a new snapshot, and what a dry run would cost.

The front end says what to back up (``BackupRequest``); this builds the exclude matcher and the
stream sources, runs the backup under the repository lock (ops/backup), commits the files
cache, and returns the snapshot with, for a dry run, the cost estimate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from cairn.app.budget import WriteBudget, reader_process_fits, write_budget
from cairn.app.context import Session
from cairn.app.events import Events
from cairn.core import clock
from cairn.core.errors import Interrupted, UsageError
from cairn.core.units import count, parse_size
from cairn.model.snapshot import Snapshot
from cairn.ops.backup.archiver import BackupOptions
from cairn.ops.backup.filelist import read_file_list
from cairn.ops.backup.snapshot_writer import BackupRequest as Run
from cairn.ops.backup.snapshot_writer import run_backup
from cairn.ops.excludes import CACHEDIR_RULE, TagRule, read_pattern_file
from cairn.ops.filter_patterns import PatternList
from cairn.ops.objectlock import LockUpkeep, active_lock, keep_locked
from cairn.ops.sources.stream import CommandSource, PipeSource, StreamItem, stream_path

__all__ = ["BackupRequest", "BackupResult", "Snapshot", "backup"]


@dataclass(frozen=True)
class BackupRequest:
    paths: Sequence[str] = ()
    # files of paths to back up besides ``paths``: (kind, file), kind "lines", "verbatim" or
    # "raw" (ops/backup/filelist.py); the file "-" is standard input
    files_from: Sequence[tuple[str, str]] = ()
    excludes: Sequence[str] = ()  # patterns
    exclude_files: Sequence[str] = ()  # files of patterns
    iexcludes: Sequence[str] = ()  # patterns matched regardless of case
    iexclude_files: Sequence[str] = ()
    exclude_caches: bool = False  # directories tagged CACHEDIR.TAG: the tag file only
    exclude_if_present: Sequence[str] = ()  # NAME[:HEADER]: directories so tagged, likewise
    exclude_larger_than: str | None = None  # a size: larger files are skipped
    one_file_system: bool = False
    # change detection
    parent: str | None = None  # a snapshot whose trees tell what is unchanged
    force: bool = False  # read every file
    ignore_inode: bool = False  # a file's inode (and ctime) may change without its content
    ignore_ctime: bool = False
    time: str | None = None  # the snapshot's time, "YYYY-MM-DD HH:MM:SS" local (default: now)
    verbose: int = 0  # 1: files read (new, modified) go to ``on_file``; 2: unchanged ones too
    on_file: Callable[[bytes, str], None] | None = None
    tags: Sequence[str] = ()  # each may be "a,b"
    host: str | None = None
    dry_run: bool = False
    read_concurrency: int = 2  # files read at once
    # a stream instead of paths: standard input (a binary file), or a command's output
    stdin: BinaryIO | None = None
    command: Sequence[str] = ()
    stream_name: str | None = None  # its file name in the snapshot (default: stdin)
    streams: Sequence[StreamItem] = ()  # already made (jobs' database dumps and the like)
    scan: bool = True  # count the paths in a process of their own, for progress's total


@dataclass
class BackupResult:
    snapshot: Snapshot
    saved: bool  # False on a dry run
    estimate: dict[str, Any] | None = None  # a dry run's cost (app/cost.py)
    # files that changed while they were read: stored as read, possibly torn
    changed_while_read: list[bytes] = field(default_factory=list)
    locks: LockUpkeep | None = None  # on a repository with an object lock: what was extended

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
    ipatterns = list(request.iexcludes)
    for f in request.iexclude_files:
        ipatterns += read_pattern_file(f)
    rules = [CACHEDIR_RULE] if request.exclude_caches else []
    rules += [TagRule.parse(t) for t in request.exclude_if_present]
    larger = request.exclude_larger_than
    limit = parse_size(larger) if larger is not None else None
    snap_time = _snapshot_time(request.time) if request.time is not None else None
    if request.parent == "latest":
        raise UsageError("--parent takes a snapshot id (without it, the latest one is the parent)")
    if sum(f == "-" for _, f in request.files_from) > 1:
        raise UsageError("standard input can be read as one list of files only")
    if request.files_from and (request.stdin is not None or request.command):
        raise UsageError("--files-from and its kin back up files, not a stream")
    streams = list(request.streams) or _streams(request)
    if streams and (patterns or ipatterns or rules or limit is not None or request.one_file_system):
        raise UsageError("excludes and --one-file-system do not apply to streams")
    if streams and (request.ignore_inode or request.ignore_ctime):
        raise UsageError("--ignore-inode and --ignore-ctime do not apply to streams")
    paths = list(request.paths)
    for kind, f in request.files_from:
        paths += read_file_list(f, kind)
    if not streams and not paths:
        if request.files_from:
            raise UsageError("nothing to back up: the lists of files name no path")
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
        paths=[] if streams else paths,
        streams=streams,
        tags=[t for tag in request.tags for t in tag.split(",") if t],
        host=request.host,
        dry_run=request.dry_run,
        uploads=budget.uploads,
        spool=budget.spool,
        options=BackupOptions(
            excludes=PatternList(patterns),
            iexcludes=PatternList(ipatterns, ignore_case=True),
            tag_rules=rules,
            exclude_larger_than=limit,
            one_file_system=request.one_file_system,
            workers=request.read_concurrency,
            force=request.force,
            ignore_inode=request.ignore_inode,
            ignore_ctime=request.ignore_ctime,
            on_file=_reporter(request),
            scan=request.scan,
            reader_process=_reader_process(session, request, budget),
        ),
        parent=request.parent,
        time=snap_time,
        before_save=lock_upkeep(session, request.dry_run),
        first_pack_size=_first_pack_size(session),
    )
    cache = session.files_cache(read_only=request.dry_run) if not streams else None
    journal = session.journal()
    try:
        result = run_backup(
            session.repo, run, events, cache, journal, session.meter, session.started
        )
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(request.dry_run, journal is not None)) from None
    finally:
        if cache is not None:
            cache.close()
    upkeep = result.before_save if isinstance(result.before_save, LockUpkeep) else None
    estimate = None
    if request.dry_run:
        extensions = upkeep.extended if upkeep is not None else 0
        # the cost model (prices, and the estimates of restore and prune) for a dry run only
        from cairn.app.cost import backup_estimate

        estimate = backup_estimate(session, result.snapshot.summary, extensions)
    return BackupResult(result.snapshot, result.saved, estimate, result.changed_while_read, upkeep)


def _reader_process(session: Session, request: BackupRequest, budget: WriteBudget) -> bool:
    """Whether small files are read in a process of their own (ops/backup/reader_process.py):
    with the default ``--read-concurrency`` 2, on a machine of two cores or more, where that
    process's packs fit in memory."""
    return (
        request.read_concurrency == 2
        and hasattr(os, "fork")
        and len(os.sched_getaffinity(0)) >= 2
        and reader_process_fits(budget, session.repo.config.pack_size, request.read_concurrency)
    )


def _first_pack_size(session: Session) -> int | None:
    """The first data pack's size, should the repository hold no pack yet (app/defaults.py)."""
    divisor = session.defaults.first_pack_divisor
    return session.repo.config.pack_size // divisor if divisor else None


TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _snapshot_time(text: str) -> datetime:
    """``--time``: local time, as restic takes it."""
    try:
        local = datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise UsageError(f"--time {text!r}: use the form 2024-05-31 23:59:00") from None
    return local.astimezone(UTC)


def _reporter(request: BackupRequest) -> Callable[[bytes, str], None] | None:
    """The files ``on_file`` hears of: new and modified ones, unchanged ones too with -vv."""
    tell = request.on_file
    if tell is None or request.verbose < 1:
        return None
    if request.verbose >= 2:
        return tell

    def read_only(path: bytes, status: str) -> None:
        if status != "unchanged":
            tell(path, status)

    return read_only


def _interrupted(dry_run: bool, journaled: bool) -> str:
    """What an interrupted backup kept (the packs it stored are in the pack journal of this
    machine's cache, docs/format.md §11.3, which the next backup indexes and reuses)."""
    if dry_run:
        return "interrupted: nothing was written (a dry run)"
    if journaled:
        return (
            "interrupted: no snapshot was saved; the packs uploaded so far are kept, and the "
            "next backup from this machine reuses them instead of uploading them again"
        )
    return (
        "interrupted: no snapshot was saved; the next backup may upload the data of this one "
        "again (no cache directory, so no pack journal of the packs uploaded so far)"
    )


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


def lock_upkeep(session: Session, dry_run: bool) -> Callable[[], LockUpkeep] | None:
    """On a repository with an object lock: extends, before the snapshot is saved, the locks
    of what it needs that would end before its own (ops/objectlock.py); on a dry run, counts
    them."""
    rule = active_lock(session.repo)  # (a copy on a store that cannot lock: said on opening)
    if rule is None:
        return None
    active = rule
    cache = session.retention_cache()
    return lambda: keep_locked(session.repo, active, cache, clock.now(), dry_run=dry_run)
