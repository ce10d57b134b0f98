"""A whole backup run: archive the paths (or streams), store packs and index, then write the
snapshot."""

from __future__ import annotations

import errno
import getpass
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cairn import __version__
from cairn.core import clock
from cairn.core.errors import CairnError, UsageError
from cairn.core.overlap import Overlap
from cairn.model.snapshot import Snapshot
from cairn.ops.backup import prefetch
from cairn.ops.backup.archiver import Archiver, BackupOptions
from cairn.ops.backup.parent import ParentFiles
from cairn.ops.backup.scanner import Scanner
from cairn.ops.backup.streams import StreamArchiver
from cairn.ops.progress import Progress
from cairn.ops.snapshots import SnapshotFilter, read_snapshots, readable, resolve_id
from cairn.ops.sources.stream import StreamItem
from cairn.ops.writelock import writing
from cairn.repo.filescache import FilesCache
from cairn.repo.journal import PackJournal
from cairn.repo.packer import Spool
from cairn.repo.repository import Repository
from cairn.storage.metered import MeteredStorage, Usage


class MissingPaths(CairnError):
    """Paths given to back up that do not exist: nothing is backed up (an empty or incomplete
    snapshot would become ``latest`` and count toward a retention policy)."""


@dataclass
class BackupRequest:
    paths: list[str]
    tags: list[str] = field(default_factory=list)
    host: str | None = None
    dry_run: bool = False
    options: BackupOptions = field(default_factory=BackupOptions)
    uploads: int = 2
    spool: Spool | None = None  # data packs built in temporary files (repo/packer.py)
    streams: list[StreamItem] = field(default_factory=list)  # backed up as files, with paths
    # the parent (an id or a unique prefix): what is unchanged is told by its trees, not by the
    # files cache; by default the latest snapshot of the host with the same paths is recorded
    parent: str | None = None
    time: datetime | None = None  # the snapshot's time (default: now)
    # run once the packs and index are stored, before the snapshot is saved (on a dry run
    # too, which saves nothing): what the snapshot needs must be locked as long as it says
    # (ops/objectlock.py)
    before_save: Callable[[], object] | None = None
    # the size of the first data pack when the repository holds no pack yet (a first backup:
    # the uploads start sooner; the next packs double up to the pack size, repo/packer.py);
    # None: full-size packs from the start
    first_pack_size: int | None = None


@dataclass
class BackupResult:
    snapshot: Snapshot
    saved: bool  # False on --dry-run
    changed_while_read: list[bytes] = field(default_factory=list)  # files, stored as read
    before_save: object = None  # what ``BackupRequest.before_save`` returned


def absolute_paths(paths: list[str]) -> list[bytes]:
    out = []
    for p in paths:
        raw = os.fsencode(p)
        if not raw:
            raise UsageError("an empty path cannot be backed up")
        out.append(os.path.normpath(os.path.abspath(raw)))
    return out


def check_paths_exist(paths: list[bytes]) -> None:
    """Raises MissingPaths naming every path that does not exist (a dangling symlink exists).
    Other errors (a parent that cannot be searched) are the walk's: a warning, a partial
    snapshot."""
    missing = []
    for p in paths:
        try:
            os.lstat(p)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                missing.append(os.fsdecode(p))
    if missing:
        raise MissingPaths(f"{', '.join(missing)}: no such file or directory; nothing backed up")


def run_backup(
    repo: Repository,
    request: BackupRequest,
    progress: Progress,
    files_cache: FilesCache | None,
    journal: PackJournal | None,
    meter: MeteredStorage | None = None,
    counted_from: Usage | None = None,
) -> BackupResult:
    """``meter``: the requests the backup makes are recorded in its summary, from
    ``counted_from`` (the meter's counts when the repository was opened, so that the opening
    is counted) or from now."""
    t0 = clock.monotonic()
    before = counted_from if counted_from is not None else meter.snapshot() if meter else None
    paths = absolute_paths(request.paths)
    check_paths_exist(paths)
    stream_paths = [s.path for s in request.streams]
    snap = new_snapshot(request, sorted([*(os.fsdecode(p) for p in paths), *stream_paths]))
    force = request.options.force
    if force and request.parent is not None:
        raise UsageError("--force reads every file: it takes no --parent")
    # the parent asked for is found before the lock is taken: an unknown id changes nothing
    chosen = resolve_id(repo, request.parent) if request.parent is not None else None
    scanner = Scanner(paths, request.options)
    ahead = _prefetch(request, paths, files_cache)
    try:
        return _run(
            repo,
            request,
            progress,
            files_cache,
            journal,
            meter,
            before,
            paths,
            snap,
            t0,
            chosen,
            scanner,
        )
    finally:
        scanner.stop()
        if ahead is not None:
            ahead.stop()


def _prefetch(
    request: BackupRequest, paths: list[bytes], files_cache: FilesCache | None
) -> prefetch.Prefetch | None:
    """For a re-backup (the files cache knows a path's directory), a process that reads the
    tree's inodes ahead of the walk (ops/backup/prefetch.py), started before the lock is taken
    and the index loaded, so that it has a head start."""
    if files_cache is None or request.streams or not paths:
        return None
    if not any(files_cache.has_dir(p.rstrip(b"/")) for p in paths):
        return None  # a first backup of these paths: its reading thread reads from the disk too
    o = request.options
    return prefetch.start(paths, o.excludes, o.iexcludes, o.one_file_system)


def _announce_total(
    progress: Progress, paths: list[bytes], scan: bool, previous: Snapshot | None, scanner: Scanner
) -> None:
    """The backup's total for progress: the parent's (what it held: an estimate that costs
    nothing, and the daily backup's case), or, without one, the paths counted while the
    backup runs, by a child process (ops/backup/scanner.py; a second look at every file: on a
    tree of small files that the files cache makes quick, it would cost more than the
    backup)."""
    if not paths or not scan:
        return
    if previous is not None:
        s = previous.summary
        files = s.files_new + s.files_changed + s.files_unchanged
        progress.total(files, s.bytes_total, complete=True, estimated=True)
    else:
        scanner.start(progress)


def _run(
    repo: Repository,
    request: BackupRequest,
    progress: Progress,
    files_cache: FilesCache | None,
    journal: PackJournal | None,
    meter: MeteredStorage | None,
    before: Usage | None,
    paths: list[bytes],
    snap: Snapshot,
    t0: float,
    chosen: str | None,
    scanner: Scanner,
) -> BackupResult:
    """The backup, once its paths are checked and ``chosen`` (--parent) is found."""
    force = request.options.force
    with Overlap(repo.request_threads) as overlap:
        # the snapshots, for the parent, are read while the lock is written and the index read:
        # they decide nothing about what is re-used (format.md §12.2)
        listing = overlap.start(read_snapshots, repo)
        with writing(repo, "backup", dry_run=request.dry_run):
            if chosen is not None:
                parents = [s for s in listing.result().snapshots if s.id == chosen]
                if not parents:
                    raise UsageError(f"parent snapshot {chosen[:8]} cannot be read")
                snap.parent = chosen
            elif force:
                parents = []
            else:
                parents = readable(repo, listing.result(), SnapshotFilter(hosts=[snap.host]))
                snap.parent = next(
                    (s.id for s in reversed(parents) if sorted(s.paths) == snap.paths), None
                )
            previous = next((p for p in parents if p.id == snap.parent), None)
            _announce_total(progress, paths, request.options.scan, previous, scanner)
            with repo.writer(
                uploads=request.uploads,
                dry_run=request.dry_run,
                journal=journal,
                spool=request.spool,
                first_pack_size=request.first_pack_size if len(repo.index) == 0 else None,
            ) as writer:
                changed: list[bytes] = []
                if request.streams:
                    parent_tree = next((s.tree for s in parents if s.id == snap.parent), None)
                    streams = StreamArchiver(writer, progress, parent_tree)
                    snap.tree, summary = streams.run(request.streams), streams.summary
                else:
                    known = files_cache
                    if chosen is not None:
                        known = ParentFiles(repo, parents[0].tree, files_cache)
                    archiver = Archiver(writer, known, request.options, progress)
                    snap.tree, summary = archiver.run(paths), archiver.summary
                    changed = archiver.changed_while_read
                    files = summary.files_new + summary.files_changed + summary.files_unchanged
                    scanner.finish(progress, files, summary.bytes_total)
                writer.flush()
                summary.packs_written = writer.packs_written
                summary.tree_packs_written = writer.tree_packs_written
            upkeep = None
            if request.before_save is not None:
                upkeep = request.before_save()
            snap.summary = summary
            snap.summary.duration = clock.monotonic() - t0
            if meter is not None and before is not None:
                snap.summary.requests = meter.snapshot().minus(before).as_dict()
            if request.dry_run:
                return BackupResult(
                    snap, saved=False, changed_while_read=changed, before_save=upkeep
                )
            snap.id = repo.save_snapshot(snap.encode())  # checks the lock is still fresh
    if files_cache is not None:
        files_cache.commit()
    return BackupResult(snap, saved=True, changed_while_read=changed, before_save=upkeep)


def new_snapshot(request: BackupRequest, paths: list[str]) -> Snapshot:
    """The snapshot's description, before its tree and summary are known."""
    return Snapshot(
        time=request.time or clock.now(),
        host=request.host or socket.gethostname(),
        user=getpass.getuser(),
        paths=paths,
        tree=b"",
        tags=sorted(set(request.tags)),
        uid=os.getuid(),
        gid=os.getgid(),
        excludes=request.options.recorded_excludes(),
        program=f"cairn {__version__}",
    )
