"""A whole backup run: archive the paths (or streams), store packs and index, then write the
snapshot."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field

from cairn import __version__
from cairn.core import clock
from cairn.core.errors import UsageError
from cairn.core.overlap import Overlap
from cairn.model.snapshot import Snapshot
from cairn.ops.backup.archiver import Archiver, BackupOptions
from cairn.ops.backup.streams import StreamArchiver
from cairn.ops.progress import Progress
from cairn.ops.snapshots import SnapshotFilter, read_snapshots, readable
from cairn.ops.sources.stream import StreamItem
from cairn.ops.writelock import writing
from cairn.repo.filescache import FilesCache
from cairn.repo.journal import PackJournal
from cairn.repo.repository import Repository
from cairn.storage.metered import MeteredStorage


@dataclass
class BackupRequest:
    paths: list[str]
    tags: list[str] = field(default_factory=list)
    host: str | None = None
    dry_run: bool = False
    options: BackupOptions = field(default_factory=BackupOptions)
    uploads: int = 2
    streams: list[StreamItem] = field(default_factory=list)  # backed up as files, with paths


@dataclass
class BackupResult:
    snapshot: Snapshot
    saved: bool  # False on --dry-run


def absolute_paths(paths: list[str]) -> list[bytes]:
    out = []
    for p in paths:
        raw = os.fsencode(p)
        if not raw:
            raise UsageError("an empty path cannot be backed up")
        out.append(os.path.normpath(os.path.abspath(raw)))
    return out


def run_backup(
    repo: Repository,
    request: BackupRequest,
    progress: Progress,
    files_cache: FilesCache | None,
    journal: PackJournal | None,
    meter: MeteredStorage | None = None,
) -> BackupResult:
    t0 = clock.monotonic()
    before = meter.snapshot() if meter else None
    paths = absolute_paths(request.paths)
    stream_paths = [s.path for s in request.streams]
    snap = new_snapshot(request, sorted([*(os.fsdecode(p) for p in paths), *stream_paths]))
    with Overlap(repo.request_threads) as overlap:
        # the snapshots, for the parent, are read while the lock is written and the index read:
        # they decide nothing about what is re-used (format.md §12.2)
        listing = overlap.start(read_snapshots, repo)
        with writing(repo, "backup", dry_run=request.dry_run):
            parents = readable(repo, listing.result(), SnapshotFilter(hosts=[snap.host]))
            snap.parent = next(
                (s.id for s in reversed(parents) if sorted(s.paths) == snap.paths), None
            )
            with repo.writer(
                uploads=request.uploads, dry_run=request.dry_run, journal=journal
            ) as writer:
                if request.streams:
                    parent_tree = next((s.tree for s in parents if s.id == snap.parent), None)
                    streams = StreamArchiver(writer, progress, parent_tree)
                    snap.tree, summary = streams.run(request.streams), streams.summary
                else:
                    archiver = Archiver(writer, files_cache, request.options, progress)
                    snap.tree, summary = archiver.run(paths), archiver.summary
                writer.flush()
                summary.packs_written = writer.packs_written
            snap.summary = summary
            snap.summary.duration = clock.monotonic() - t0
            if meter is not None and before is not None:
                snap.summary.requests = meter.snapshot().minus(before).as_dict()
            if request.dry_run:
                return BackupResult(snap, saved=False)
            snap.id = repo.save_snapshot(snap.encode())  # checks the lock is still fresh
    if files_cache is not None:
        files_cache.commit()
    return BackupResult(snap, saved=True)


def new_snapshot(request: BackupRequest, paths: list[str]) -> Snapshot:
    """The snapshot's description, before its tree and summary are known."""
    return Snapshot(
        time=clock.now(),
        host=request.host or socket.gethostname(),
        user=getpass.getuser(),
        paths=paths,
        tree=b"",
        tags=sorted(set(request.tags)),
        uid=os.getuid(),
        gid=os.getgid(),
        excludes=request.options.excludes.patterns,
        program=f"cairn {__version__}",
    )
