"""A store opened read-only: ``--no-lock`` on the commands that only read.

cairn's reading commands (snapshots, ls, cat, find, diff, stats, restore, dump, mount, check)
take no lock and write nothing to the repository, so they work with read-only credentials as
they are. ``--no-lock`` (the flag restic's users give for that) makes it a guarantee: the
store is opened through this wrapper, which refuses every write, delete, version copy or
marker, and change of an object's retention before a request is sent, in one line. Reads,
listings, retention reads and archive restore requests (asking a cold object to be thawed
changes nothing of the repository) pass."""

from __future__ import annotations

from datetime import datetime

from cairn.core.errors import StorageError
from cairn.storage.base import Content, StorageWrapper
from cairn.storage.objectlock import LockWrapper, ObjectLockStore, RetentionRule
from cairn.storage.objects import ObjectStore
from cairn.storage.versions import VersionStore, VersionWrapper


def _refused(where: str, what: str) -> StorageError:
    return StorageError(f"{where}: opened read-only (--no-lock): {what} refused")


class ReadOnlyStorage(StorageWrapper):
    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        raise _refused(self.describe(), f"writing {name}")

    def delete(self, name: str) -> None:
        raise _refused(self.describe(), f"deleting {name}")

    @property
    def objects(self) -> ObjectStore | None:
        return None  # the mirrors' capability: its calls write

    @property
    def versions(self) -> VersionStore | None:
        inner = self.inner.versions
        return None if inner is None else ReadOnlyVersions(inner, self.describe())

    @property
    def object_lock(self) -> ObjectLockStore | None:
        inner = self.inner.object_lock
        return None if inner is None else ReadOnlyLock(inner, self.describe())


class ReadOnlyVersions(VersionWrapper):
    def __init__(self, inner: VersionStore, where: str) -> None:
        super().__init__(inner)
        self.where = where

    def restore_version(
        self, name: str, version_id: str, *, storage_class: str | None = None
    ) -> str:
        raise _refused(self.where, f"copying a version of {name}")

    def hide(self, name: str) -> str:
        raise _refused(self.where, f"hiding {name}")


class ReadOnlyLock(LockWrapper):
    def __init__(self, inner: ObjectLockStore, where: str) -> None:
        super().__init__(inner)
        self.where = where

    def extend(self, name: str, until: datetime) -> None:
        raise _refused(self.where, f"extending the retention of {name}")

    def configure_bucket(self, rule: RetentionRule, noncurrent_days: int | None) -> None:
        raise _refused(self.where, "configuring the bucket")
