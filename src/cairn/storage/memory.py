"""A store in memory, for tests: the whole storage contract, and optionally storage classes
with archived objects as Amazon S3 has them, so that cold-restore logic runs without S3.

- ``MemoryStorage()`` is a store without storage classes, as a local directory is
  (``archive`` is None).
- ``MemoryStorage(classes=True)`` is its own archive capability: a write with
  ``metadata=False`` takes ``data_class``, ``set_class`` moves an object to another class, and
  an object in an archive class (GLACIER, DEEP_ARCHIVE) reads as ``ObjectArchived`` until a
  restore was requested and ``finish_restores`` made its copy readable (``expire_restores``
  lets the copies lapse, as they do after their days). ``restore_requests`` records every
  request.

Objects are write-once (a second write of a name keeps the first content, as the other stores
do) and safe to use from several threads. The store's object capability (``objects``, for
mirrors) is cairn.storage.memoryobjects: it overwrites, and with ``multipart`` given, uploads
content in parts as S3 does.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from cairn.core import clock
from cairn.core.errors import ObjectArchived, ObjectMissing, StorageError
from cairn.storage.archive import (
    ARCHIVE_CLASSES,
    ARCHIVED,
    READABLE,
    RESTORED,
    RESTORING,
    ArchiveStore,
    ObjectInfo,
)
from cairn.storage.base import Content, content_chunks
from cairn.storage.memoryobjects import MemoryObjects
from cairn.storage.objectlock import ObjectLockStore
from cairn.storage.objects import DEFAULT_TYPE, Multipart, ObjectStore
from cairn.storage.versions import VersionStore

STANDARD = "STANDARD"


@dataclass
class _Object:
    data: bytes
    storage_class: str
    modified: datetime
    restore: str | None = None  # None, RESTORING or RESTORED (archived objects only)
    etag: str = ""
    content_type: str = DEFAULT_TYPE

    def readable(self) -> bool:
        return self.storage_class not in ARCHIVE_CLASSES or self.restore == RESTORED


class MemoryStorage:
    versions: VersionStore | None = None  # no object versions (memoryversions.py has them)

    def __init__(
        self,
        *,
        classes: bool = False,
        data_class: str = STANDARD,
        now: Callable[[], datetime] = clock.now,
        multipart: Multipart | None = None,
    ) -> None:
        self._objects: dict[str, _Object] = {}
        self._lock = threading.Lock()
        self._classes = classes
        self.data_class = data_class  # the class of writes with metadata=False
        self._now = now
        self.restore_requests: list[tuple[str, int, str]] = []  # (name, days, tier), in order
        self._object_store = MemoryObjects(self, multipart)

    def describe(self) -> str:
        return "memory:"

    @property
    def archive(self) -> ArchiveStore | None:
        return self if self._classes else None

    @property
    def objects(self) -> ObjectStore:
        return self._object_store

    object_lock: ObjectLockStore | None = None  # retention is tested on a real S3 server

    # ------------------------------------------------------------------ the contract
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self._readable(name).data
        return data[offset:] if length is None else data[offset : offset + length]

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        data = self._readable(name).data[offset : offset + len(out)]
        out[: len(data)] = data
        return len(data)

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        _check_name(name)
        obj = self.new_object(data, cold=not metadata)
        with self._lock:
            self._objects.setdefault(name, obj)

    def stat(self, name: str) -> int:
        return len(self._get(name).data)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for name, obj in self._matching(prefix):
            yield name, len(obj.data)

    def delete(self, name: str) -> None:
        with self._lock:
            self._objects.pop(name, None)

    def new_object(self, data: Content, *, cold: bool, content_type: str = DEFAULT_TYPE) -> _Object:
        """An object of ``data``, in the class a write with ``metadata=not cold`` gives it, its
        ETag the MD5 of its bytes in quotes as S3 makes it for a single PUT."""
        content = b"".join(bytes(c) for c in content_chunks(data))
        etag = f'"{hashlib.md5(content, usedforsecurity=False).hexdigest()}"'
        cls = self.data_class if cold and self._classes else STANDARD
        return _Object(content, cls, self._now(), etag=etag, content_type=content_type)

    # ------------------------------------------------------------------ the archive capability
    def list_with_class(self, prefix: str) -> Iterator[ObjectInfo]:
        for name, obj in self._matching(prefix):
            yield ObjectInfo(name, len(obj.data), obj.storage_class, obj.modified)

    def request_restore(self, name: str, days: int, tier: str) -> None:
        with self._lock:
            obj = self._objects.get(name)
            if obj is None:
                raise ObjectMissing(name)
            if obj.storage_class not in ARCHIVE_CLASSES:
                raise StorageError(f"{name}: not in an archive storage class")
            self.restore_requests.append((name, days, tier))
            if obj.restore is None:
                obj.restore = RESTORING

    def restore_status(self, name: str) -> str:
        obj = self._get(name)
        if obj.storage_class not in ARCHIVE_CLASSES:
            return READABLE
        return {None: ARCHIVED, RESTORING: RESTORING, RESTORED: RESTORED}[obj.restore]

    # ------------------------------------------------------------------ for tests
    def set_class(self, name: str, storage_class: str) -> None:
        """Moves an object to ``storage_class`` (an archive class archives it)."""
        with self._lock:
            obj = self._objects.get(name)
            if obj is None:
                raise ObjectMissing(name)
            obj.storage_class = storage_class
            obj.restore = None

    def finish_restores(self, names: Iterable[str] | None = None) -> None:
        """The requested restores (of ``names``, or all) are done: the copies are readable."""
        self._set_restores(RESTORING, RESTORED, names)

    def expire_restores(self, names: Iterable[str] | None = None) -> None:
        """The restored copies (of ``names``, or all) lapse: the objects are archived again."""
        self._set_restores(RESTORED, None, names)

    # ------------------------------------------------------------------ inside
    def _set_restores(self, old: str, new: str | None, names: Iterable[str] | None) -> None:
        with self._lock:
            chosen = self._objects.keys() if names is None else set(names)
            for name in chosen:
                obj = self._objects.get(name)
                if obj is not None and obj.restore == old:
                    obj.restore = new

    def _get(self, name: str) -> _Object:
        with self._lock:
            obj = self._objects.get(name)
        if obj is None:
            raise ObjectMissing(name)
        return obj

    def _readable(self, name: str) -> _Object:
        obj = self._get(name)
        if not obj.readable():
            raise ObjectArchived(name)
        return obj

    def _matching(self, prefix: str) -> list[tuple[str, _Object]]:
        """A snapshot of the objects under ``prefix``, sorted by name."""
        with self._lock:
            found = [(n, o) for n, o in self._objects.items() if n.startswith(prefix)]
        return sorted(found, key=lambda item: item[0])


def _check_name(name: str) -> None:
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"invalid object name {name!r}")
