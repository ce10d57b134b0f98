"""Repository locks: who is writing, and which packs a prune is about to delete.

A lock is a sealed, content-addressed object ``locks/<id>`` holding
``{"version": 1, "kind": "backup" | "prune" | "repair", "host", "pid", "user", "time",
"condemned": [pack ids], "session"}``. Objects are write-once, so a lock is refreshed by
writing a new object and deleting the old one; ``session`` stays the same across refreshes. A
lock is stale when its time is older than ``STALE_AFTER``, or when it names this host and a
process that no longer runs.

The protocol (docs/format.md §12):

- A backup writes its lock *before* it reads the index, then reads every prune lock (while it
  reads the index) and treats the packs they condemn as absent (it stores those blobs again if
  it needs them, and its pack journal does not adopt them). It refreshes its lock every
  ``REFRESH_EVERY`` and removes it at the end; once it could not refresh it for
  ``STALE_AFTER - REFRESH_EVERY`` it writes nothing more.
- Prune writes its lock with the list of packs it will delete *before* it looks at the locks
  of others, then waits for the holders it saw, and keeps any condemned pack that what they
  wrote meanwhile refers to.

Whichever of a backup and a prune writes its lock first, the other sees it: either the prune
finds the backup's lock and waits for it, or the backup finds the condemned packs and never
re-uses their blobs.
"""

from __future__ import annotations

import errno
import getpass
import os
import secrets
import socket
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgpack

from cairn.core import clock
from cairn.core.errors import CairnError, ObjectMissing, StorageError
from cairn.core.overlap import Overlap
from cairn.repo import layout

LOCK_VERSION = 1
STALE_AFTER = timedelta(minutes=30)
REFRESH_EVERY = timedelta(minutes=5)


@dataclass
class LockInfo:
    kind: str
    host: str
    pid: int
    user: str
    time: datetime
    condemned: list[bytes] = field(default_factory=list)
    # the same for every refresh of one holder's lock (random; empty in locks written before
    # it existed, which are told apart by kind, host, user and pid)
    session: str = ""
    name: str = ""  # object name, set when read

    def encode(self) -> bytes:
        return msgpack.packb(  # type: ignore[no-any-return]
            {
                "version": LOCK_VERSION,
                "kind": self.kind,
                "host": self.host,
                "pid": self.pid,
                "user": self.user,
                "time": self.time.isoformat(),
                "condemned": self.condemned,
                "session": self.session,
            }
        )

    @classmethod
    def decode(cls, name: str, data: bytes) -> LockInfo:
        d = msgpack.unpackb(data)
        if d.get("version") != LOCK_VERSION:
            raise ValueError("unsupported lock version")
        return cls(
            kind=d["kind"],
            host=d["host"],
            pid=d["pid"],
            user=d["user"],
            time=datetime.fromisoformat(d["time"]),
            condemned=[bytes(p) for p in d["condemned"]],
            session=str(d.get("session", "")),
            name=name,
        )

    @property
    def holder(self) -> str:
        """Who holds the lock, the same across its refreshes."""
        return self.session or f"{self.kind}:{self.user}@{self.host}:{self.pid}"

    def is_stale(self, now: datetime | None = None) -> bool:
        now = now or clock.now()
        if now - self.time > STALE_AFTER:
            return True
        return bool(self.host == socket.gethostname() and not _pid_alive(self.pid))

    def describe(self) -> str:
        age = int((clock.now() - self.time).total_seconds() // 60)
        return (
            f"{self.kind} lock of {self.user}@{self.host} (pid {self.pid}), refreshed {age} min ago"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


class LockBusy(CairnError):
    pass


class Locks:
    """Reading and writing lock objects; ``repo`` is a Repository (sealing and storage)."""

    def __init__(self, repo) -> None:  # type: ignore[no-untyped-def]
        self._repo = repo

    def read_all(
        self,
        unreadable: Callable[[str, str], None] | None = None,
        skip: Collection[str] = (),
        listed: Collection[str] | None = None,
    ) -> list[LockInfo]:
        """Every lock that can be read, but those named in ``skip`` (this process's own: it
        knows what they say). One that cannot (damaged, or of a newer format) is ignored, and
        handed to ``unreadable`` (name, why): `check` reports them. On an object store the
        locks are read at once (``request_threads``). ``listed``: the names under locks/ a
        listing already made saw, instead of listing."""
        if listed is None:
            listed = [name for name, _ in self._repo.storage.list(layout.LOCKS)]
        names = [name for name in listed if name not in skip]
        out = []
        with Overlap(self._repo.request_threads) as overlap:
            for name, data in overlap.map(self._repo.load_object, names):
                try:
                    out.append(LockInfo.decode(name, data.result()))
                except ObjectMissing:
                    continue  # removed while we listed
                except (CairnError, ValueError, KeyError, TypeError) as e:
                    if unreadable is not None:
                        unreadable(name, str(e))
        return out

    def write(self, info: LockInfo) -> str:
        info.time = clock.now()
        info.name = layout.LOCKS + self._repo.save_object(layout.LOCKS, info.encode())
        return info.name

    def remove(self, info: LockInfo) -> None:
        if info.name:
            self._delete(info.name)

    def remove_stale(self, found: list[LockInfo] | None = None) -> int:
        """Removes the stale locks among ``found`` (as ``read_all`` gave them; read now if
        None); returns how many."""
        n = 0
        for lock in self.read_all() if found is None else found:
            if lock.is_stale() and self._delete(lock.name):
                n += 1
        return n

    def _delete(self, name: str) -> bool:
        """Deletes a lock object. A store that refuses (keys without delete permission, an
        append-only or locked bucket) leaves it behind: a notice, not a failure, since a lock
        left behind is ignored by everyone once stale (its process ended, or 30 minutes)."""
        try:
            self._repo.storage.delete(name)
        except StorageError as e:
            self._repo.notice(name, f"cannot remove the lock ({e}); it is ignored once stale")
            return False
        return True


def new_lock(kind: str, condemned: list[bytes] | None = None) -> LockInfo:
    return LockInfo(
        kind=kind,
        host=socket.gethostname(),
        pid=os.getpid(),
        user=getpass.getuser(),
        time=clock.now(),
        condemned=list(condemned or []),
        session=secrets.token_hex(16),
    )


class HeldLock:
    """A lock that refreshes itself in the background until released."""

    def __init__(self, locks: Locks, info: LockInfo) -> None:
        self._locks = locks
        self.info = info
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self.refresh_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cairn-lock", daemon=True)

    def __enter__(self) -> HeldLock:
        self._locks.write(self.info)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def update(self, condemned: list[bytes]) -> None:
        """Rewrites the lock with a new list of condemned packs (before returning)."""
        with self._mutex:
            old = LockInfo(**{**self.info.__dict__})
            self.info.condemned = list(condemned)
            self._locks.write(self.info)
            self._locks.remove(old)

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_EVERY.total_seconds()):
            try:
                with self._mutex:
                    old = LockInfo(**{**self.info.__dict__})
                    self._locks.write(self.info)
                    self._locks.remove(old)
            except BaseException as e:  # reported by check_fresh()
                self.refresh_error = e

    def check_fresh(self) -> None:
        """Raises if the lock could not be refreshed for so long that others may ignore it."""
        if clock.now() - self.info.time > STALE_AFTER - REFRESH_EVERY:
            raise LockBusy(
                f"the repository lock could not be refreshed since {self.info.time:%H:%M:%S}"
                f" ({self.refresh_error}); giving up so a concurrent prune cannot be misled"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._mutex:
            self._locks.remove(self.info)
