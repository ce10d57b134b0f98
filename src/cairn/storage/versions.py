"""The versions capability, and the store as it was at a past time (docs/point-in-time.md).

A bucket with versioning keeps every object it ever held: writing a name over another adds a
version on top, and deleting a name adds a *delete marker* on top; nothing is lost until a
version itself is deleted by its id. A store that keeps versions offers a ``VersionStore`` as
its ``versions`` (None otherwise: a local directory); every wrapper offers its inner store's,
wrapped as it wraps the store (counted by the meter, retried), so a caller takes
``storage.versions`` from the top of the stack:

- ``status()`` is the bucket's versioning: ``ENABLED``, ``SUSPENDED`` (old versions are kept,
  new writes replace the one version without an id) or ``OFF`` (never enabled).
- ``versions(prefix)`` yields an ``ObjectVersion`` for every version and delete marker of
  every name under ``prefix``, in the store's order: names in ascending order, and each
  name's entries newest first (as ListObjectVersions gives them, page after page).
- ``read_version(name, version_id, offset, length)`` reads a range of one version, as
  ``read`` reads the current one (``ObjectMissing`` for an unknown name or version).
- ``restore_version(name, version_id, *, storage_class=None)`` copies a version on top of
  the name, as its new current version (one server-side copy, in ``storage_class``: None is
  the store's standard one), and returns the new version's id. Nothing is removed: the
  versions in between stay.
- ``hide(name)`` puts a delete marker on top of the name (a DELETE without a version id) and
  returns the marker's id. It removes no version either.

No method deletes a version: cairn never does (DESIGN.md).

``AsOfStorage(store, versions, time)`` is the read-only store of each name's newest version
at or before ``time`` (``select``); see its docstring for the rule on equal timestamps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cairn.core.errors import ObjectMissing, StorageError

if TYPE_CHECKING:  # the capability is part of the Storage protocol of that module
    from cairn.storage.archive import ArchiveStore
    from cairn.storage.base import Content, Storage
    from cairn.storage.objectlock import ObjectLockStore
    from cairn.storage.objects import ObjectStore

ENABLED = "enabled"
SUSPENDED = "suspended"
OFF = "off"


@dataclass(frozen=True)
class ObjectVersion:
    """One version of a name, or a delete marker (``deleted``; its ``size`` is 0)."""

    name: str
    version_id: str
    modified: datetime
    size: int
    latest: bool  # on top: the name's current state
    deleted: bool = False
    etag: str = ""  # as the store gave it ("" for a delete marker)
    storage_class: str = "STANDARD"


@runtime_checkable
class VersionStore(Protocol):
    def status(self) -> str: ...

    def versions(self, prefix: str) -> Iterator[ObjectVersion]: ...

    def read_version(
        self, name: str, version_id: str, offset: int = 0, length: int | None = None
    ) -> bytes: ...

    def restore_version(
        self, name: str, version_id: str, *, storage_class: str | None = None
    ) -> str: ...

    def hide(self, name: str) -> str: ...


class VersionWrapper:
    """Base for the wrappers of the capability: forwards everything to ``inner``; subclasses
    override what they change."""

    def __init__(self, inner: VersionStore) -> None:
        self.inner = inner

    def status(self) -> str:
        return self.inner.status()

    def versions(self, prefix: str) -> Iterator[ObjectVersion]:
        return self.inner.versions(prefix)

    def read_version(
        self, name: str, version_id: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        return self.inner.read_version(name, version_id, offset, length)

    def restore_version(
        self, name: str, version_id: str, *, storage_class: str | None = None
    ) -> str:
        return self.inner.restore_version(name, version_id, storage_class=storage_class)

    def hide(self, name: str) -> str:
        return self.inner.hide(name)


def select(entries: Iterable[ObjectVersion], time: datetime) -> dict[str, ObjectVersion]:
    """Each name's entry as of ``time``: the first of its entries, in the store's order
    (newest first), modified at or before ``time``; a name whose entry is a delete marker, or
    that has none that old, is left out. ``entries`` in the store's order (``versions``)."""
    chosen: dict[str, ObjectVersion] = {}
    decided: set[str] = set()
    for v in entries:
        if v.name in decided or v.modified > time:
            continue
        decided.add(v.name)
        if not v.deleted:
            chosen[v.name] = v
    return chosen


def current(entries: Iterable[ObjectVersion]) -> dict[str, ObjectVersion]:
    """Each name's entry on top now (its first in the store's order), delete markers
    included."""
    top: dict[str, ObjectVersion] = {}
    for v in entries:
        top.setdefault(v.name, v)
    return top


class AsOfStorage:
    """The store ``store`` as it was at ``time``, read through its ``versions`` capability:
    each name is its newest version at or before ``time``, and absent if that is a delete
    marker or it has none so old.

    Which version is newest is the store's own order (ListObjectVersions lists each name's
    versions and delete markers newest first), not the timestamps alone: S3 stores give
    LastModified to the second (SeaweedFS) or the millisecond (Amazon S3), so a version and
    the delete marker over it may carry the same time. A version stamped exactly ``time``
    counts as there at ``time``; of several stamped ``time``, the newest in the store's order.

    Versions are listed once per listing unit, when first needed: a name's directory (all
    but its last path component, ``data/ab/``), a top-level name by itself, and a ``list``
    of a prefix by that prefix; a listing serves every name below its prefix, so reading a
    thousand objects of one directory costs one listing, not a thousand. Reads go by version
    id. Writes and deletes are refused (one-line ``StorageError``): the past is read-only."""

    def __init__(self, store: Storage, versions: VersionStore, time: datetime) -> None:
        if time.tzinfo is None:
            raise ValueError("an as-of time needs a time zone")
        self.inner = store
        self.versions_of = versions
        self.time = time
        self._listed: dict[str, dict[str, ObjectVersion]] = {}  # prefix -> name -> version
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.inner.describe()} as of {self.time.isoformat(timespec='seconds')}"

    # ------------------------------------------------------------------ reading the past
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        v = self._version(name)
        if length == 0:
            return b""
        return self.versions_of.read_version(name, v.version_id, offset, length)

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        if not len(out):
            return 0
        data = self.read(name, offset, len(out))
        out[: len(data)] = data
        return len(data)

    def stat(self, name: str) -> int:
        return self._version(name).size

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        listed = self._covering(prefix)
        if listed is None:
            listed = self._fill(prefix)
        for name, v in sorted(listed.items()):
            if name.startswith(prefix):
                yield name, v.size

    def version_of(self, name: str) -> ObjectVersion | None:
        """The version that ``name`` reads as, or None where it is absent at the time."""
        try:
            return self._version(name)
        except ObjectMissing:
            return None

    def first_written(self, name: str) -> datetime | None:
        """When ``name`` got its oldest version that the store keeps (None: it has none)."""
        times = [v.modified for v in self.versions_of.versions(name) if v.name == name]
        return min(times) if times else None

    # ------------------------------------------------------------------ refused
    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        raise self._refused("write", name)

    def delete(self, name: str) -> None:
        raise self._refused("delete", name)

    def _refused(self, what: str, name: str) -> StorageError:
        return StorageError(
            f"cannot {what} {name}: the repository as of "
            f"{self.time.isoformat(timespec='seconds')} is read-only"
        )

    # ------------------------------------------------------------------ capabilities
    @property
    def archive(self) -> ArchiveStore | None:
        return None  # restores of archived versions are not offered in the past

    @property
    def objects(self) -> ObjectStore | None:
        return None  # its objects are overwritten and created: writes

    @property
    def versions(self) -> VersionStore | None:
        return None

    @property
    def object_lock(self) -> ObjectLockStore | None:
        return None  # retention is the current versions' and set by writes: none here

    # ------------------------------------------------------------------ inside
    def _version(self, name: str) -> ObjectVersion:
        listed = self._covering(name)
        if listed is None:
            listed = self._fill(_unit_of(name))
        v = listed.get(name)
        if v is None:
            raise ObjectMissing(name)
        return v

    def _covering(self, name: str) -> dict[str, ObjectVersion] | None:
        """The listing that holds every name starting with ``name``, if one was made."""
        with self._lock:
            for prefix, listed in self._listed.items():
                if name.startswith(prefix):
                    return listed
        return None

    def _fill(self, prefix: str) -> dict[str, ObjectVersion]:
        # under the lock while it lists: threads that need the same listing wait for it
        # rather than make it again (one listing per unit, whatever the threads)
        with self._lock:
            listed = self._listed.get(prefix)
            if listed is None:
                listed = select(self.versions_of.versions(prefix), self.time)
                self._listed[prefix] = listed
            return listed


def _unit_of(name: str) -> str:
    """The prefix listed to find ``name``: its directory, or a top-level name itself."""
    head, sep, _ = name.rpartition("/")
    return head + sep if sep else name
