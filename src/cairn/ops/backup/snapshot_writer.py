"""A whole backup run: archive the paths, store packs and index, then write the snapshot."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field

from cairn import __version__
from cairn.core import clock
from cairn.core.errors import UsageError
from cairn.model.snapshot import Snapshot, Summary
from cairn.ops.backup.archiver import Archiver, BackupOptions
from cairn.ops.progress import Progress
from cairn.ops.snapshots import SnapshotFilter, load_snapshots
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
    started = clock.now()
    t0 = clock.monotonic()
    before = meter.snapshot() if meter else None
    paths = absolute_paths(request.paths)
    host = request.host or socket.gethostname()
    str_paths = sorted(os.fsdecode(p) for p in paths)
    parents = load_snapshots(repo, SnapshotFilter(hosts=[host]))
    parent = next((s.id for s in reversed(parents) if sorted(s.paths) == str_paths), None)

    repo.start_writing(uploads=request.uploads, dry_run=request.dry_run, journal=journal)
    try:
        archiver = Archiver(repo, files_cache, request.options, progress)
        tree = archiver.run(paths)
        repo.flush()
        packs_written = repo.packer_stats[0]
    finally:
        repo.close()
    summary: Summary = archiver.summary
    summary.packs_written = packs_written
    summary.duration = clock.monotonic() - t0
    if meter is not None and before is not None:
        summary.requests = meter.snapshot().minus(before).as_dict()
    snap = Snapshot(
        time=started,
        host=host,
        user=getpass.getuser(),
        paths=str_paths,
        tree=tree,
        tags=sorted(set(request.tags)),
        parent=parent,
        uid=os.getuid(),
        gid=os.getgid(),
        excludes=request.options.excludes.patterns,
        program=f"cairn {__version__}",
        summary=summary,
    )
    if request.dry_run:
        return BackupResult(snap, saved=False)
    snap.id = repo.save_snapshot(snap.encode())
    if files_cache is not None:
        files_cache.commit()
    return BackupResult(snap, saved=True)
