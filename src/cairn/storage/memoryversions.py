"""A bucket with versioning, in memory, for tests: the storage contract over the current
versions, and the versions capability (cairn.storage.versions) over all of them.

As S3 with versioning enabled: ``write`` of a free name adds its first version (of a name that
exists, it keeps the object: the contract's write-once, as the S3 store's conditional PUT);
``overwrite`` (what an attacker's plain PUT does) adds a version on top; ``delete`` and
``hide`` add a delete marker, even over a missing name. Each entry gets the time ``now()``
gives, so tests choose equal or distinct timestamps; the order of a name's entries (newest
first) is the order they were made in. No version is ever removed.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import datetime

from cairn.core import clock
from cairn.core.errors import ObjectMissing, StorageError
from cairn.storage.archive import ArchiveStore
from cairn.storage.base import Content, content_chunks
from cairn.storage.objects import ObjectStore
from cairn.storage.versions import ENABLED, ObjectVersion, VersionStore


class VersionedMemoryStorage:
    archive: ArchiveStore | None = None
    objects: ObjectStore | None = None

    def __init__(self, now: Callable[[], datetime] = clock.now, status: str = ENABLED) -> None:
        self._now = now
        self.status = status  # the bucket's versioning (ENABLED, SUSPENDED, OFF)
        self._entries: dict[str, list[tuple[ObjectVersion, bytes]]] = {}  # newest first
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return "memory-versioned:"

    @property
    def versions(self) -> VersionStore:
        return MemoryVersions(self)

    # ------------------------------------------------------------------ the contract
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self._current(name)[1]
        return data[offset:] if length is None else data[offset : offset + length]

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        data = self.read(name, offset, len(out))
        out[: len(data)] = data
        return len(data)

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        with self._lock:
            if self._top(name) is not None:
                return
        self.overwrite(name, data)

    def stat(self, name: str) -> int:
        return self._current(name)[0].size

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self._lock:
            found = [(n, self._top(n)) for n in sorted(self._entries) if n.startswith(prefix)]
        for name, top in found:
            if top is not None:
                yield name, top[0].size

    def delete(self, name: str) -> None:
        self.add(name, b"", "", deleted=True)

    # ------------------------------------------------------------------ for tests
    def overwrite(self, name: str, data: Content) -> str:
        """A plain PUT: a new version on top, whatever is there."""
        content = b"".join(bytes(c) for c in content_chunks(data))
        etag = f'"{hashlib.md5(content, usedforsecurity=False).hexdigest()}"'
        return self.add(name, content, etag, deleted=False)

    def entries(self, name: str) -> list[ObjectVersion]:
        """Every entry of ``name``, newest first."""
        with self._lock:
            return [v for v, _ in self._entries.get(name, [])]

    # ------------------------------------------------------------------ inside
    def add(self, name: str, data: bytes, etag: str, *, deleted: bool) -> str:
        if not name or name.startswith("/"):
            raise StorageError(f"invalid object name {name!r}")
        with self._lock:
            vid = f"v{next(self._ids):06d}"
            old = self._entries.setdefault(name, [])
            entry = ObjectVersion(name, vid, self._now(), len(data), True, deleted, etag)
            old[:] = [(_not_latest(v), d) for v, d in old]
            old.insert(0, (entry, data))
        return vid

    def _top(self, name: str) -> tuple[ObjectVersion, bytes] | None:
        entries = self._entries.get(name)
        if not entries or entries[0][0].deleted:
            return None
        return entries[0]

    def all_entries(self, prefix: str) -> list[tuple[ObjectVersion, bytes]]:
        """The entries of the names under ``prefix``, names in order, each newest first."""
        with self._lock:
            return [
                e for n in sorted(self._entries) if n.startswith(prefix) for e in self._entries[n]
            ]

    def _current(self, name: str) -> tuple[ObjectVersion, bytes]:
        with self._lock:
            top = self._top(name)
        if top is None:
            raise ObjectMissing(name)
        return top


class MemoryVersions:
    """The versions capability of a ``VersionedMemoryStorage``."""

    def __init__(self, store: VersionedMemoryStorage) -> None:
        self.store = store

    def status(self) -> str:
        return self.store.status

    def versions(self, prefix: str) -> Iterator[ObjectVersion]:
        for v, _ in self.store.all_entries(prefix):
            yield v

    def read_version(
        self, name: str, version_id: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        data = self._find(name, version_id)[1]
        return data[offset:] if length is None else data[offset : offset + length]

    def restore_version(
        self, name: str, version_id: str, *, storage_class: str | None = None
    ) -> str:
        v, data = self._find(name, version_id)
        return self.store.add(name, data, v.etag, deleted=False)

    def hide(self, name: str) -> str:
        return self.store.add(name, b"", "", deleted=True)

    def _find(self, name: str, version_id: str) -> tuple[ObjectVersion, bytes]:
        for v, data in self.store.all_entries(name):
            if v.name == name and v.version_id == version_id and not v.deleted:
                return v, data
        raise ObjectMissing(f"{name} (version {version_id})")


def _not_latest(v: ObjectVersion) -> ObjectVersion:
    return ObjectVersion(
        v.name, v.version_id, v.modified, v.size, False, v.deleted, v.etag, v.storage_class
    )
