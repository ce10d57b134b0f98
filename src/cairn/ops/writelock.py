"""Taking the repository for writing new data: the backup side of the prune protocol
(see cairn.repo.locks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cairn.core.overlap import Overlap
from cairn.repo.locks import HeldLock, Locks, new_lock
from cairn.repo.repository import Repository


def condemned_packs(locks: Locks, own: HeldLock | None = None) -> set[bytes]:
    """Packs that a running prune is about to delete (``own``, this process's lock, is not read
    again: it condemns nothing)."""
    return {
        pack
        for lock in locks.read_all(skip=[own.info.name] if own is not None else ())
        if lock.kind == "prune" and not lock.is_stale()
        for pack in lock.condemned
    }


@contextmanager
def holding(
    repo: Repository, kind: str = "backup", dry_run: bool = False
) -> Iterator[HeldLock | None]:
    """Holds a lock of ``kind`` (none for a dry run), refreshed in the background; while it is
    held, no index object or snapshot is written once the lock could not be refreshed for so
    long that a prune may take it for stale."""
    held = None if dry_run else HeldLock(Locks(repo), new_lock(kind))
    if held is not None:
        held.__enter__()
        repo.write_guard = held.check_fresh
    try:
        yield held
    finally:
        if held is not None:
            repo.write_guard = None
            held.release()


@contextmanager
def writing(
    repo: Repository, kind: str = "backup", dry_run: bool = False
) -> Iterator[HeldLock | None]:
    """``holding`` a lock of ``kind``, then loads the index without the packs a concurrent
    prune condemned, so nothing new will refer to them (and the pack journal adopts none of
    them).

    Once the lock is written, the locks are read while the index is (format.md §12.2): the
    condemned packs are left out of it as each index object comes in."""
    with holding(repo, kind, dry_run) as held:
        with Overlap(repo.request_threads) as overlap:
            condemned = overlap.start(condemned_packs, Locks(repo), held)
            repo.load_index(exclude_packs=condemned.result)
        yield held
