"""The mount use case: the repository's snapshots as a read-only file system at a mount point,
served until it is unmounted (Ctrl-C, SIGTERM, ``fusermount -u``).

The mount point is checked before the repository is read, so a mistyped one fails at once
with one line saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cairn.app.context import Session
from cairn.core import clock
from cairn.ops.mount.fs import SnapshotFS
from cairn.ops.mount.namespace import Namespace
from cairn.ops.mount.run import check_mountpoint, serve
from cairn.ops.snapshots import SnapshotFilter, load_snapshots

DEFAULT_CACHE = 64 << 20


@dataclass(frozen=True)
class MountRequest:
    mountpoint: Path
    cache_size: int = DEFAULT_CACHE  # bytes of decrypted blobs kept for later reads
    refresh: float = 5.0  # seconds before the list of snapshots is read again
    filter: SnapshotFilter | None = None  # which snapshots are shown


def mount(session: Session, request: MountRequest, mounting: Callable[[], None]) -> None:
    """Serves the mount until it is unmounted; ``mounting`` is called once the mount point and
    the repository's snapshots are found good, just before the mount."""
    check_mountpoint(request.mountpoint)
    repo = session.repo
    repo.load_index()
    namespace = Namespace(lambda: load_snapshots(repo, request.filter), request.refresh)
    namespace.root()  # the repository's snapshots readable before anything is mounted
    fs = SnapshotFS(repo, namespace, request.cache_size, _now())
    mounting()
    serve(fs, request.mountpoint, f"cairn:{session.url}")


def _now() -> int:
    return int(clock.now().timestamp() * 1e9)
