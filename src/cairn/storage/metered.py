"""Counts every call and byte that passes to the store, the way S3 bills them.

A read is a GET, a write a PUT, a stat a HEAD, a delete a DELETE, and a listing one LIST per
page of ``LIST_PAGE`` names (the bytes of its answers as bytes down, where the store says).
The archive capability's calls count as the requests they are:
a listing with storage classes as a listing, a restore status as a HEAD, and a restore request
as a RestoreObject (``restore``). The object capability's too (cairn.storage.objects), by the
class S3 bills each in: a PUT, a create-only PUT, a CopyObject, and each request of an upload
in parts (its start, every part, its completion) as a PUT; a HEAD as a HEAD; ListParts and
each page of ListMultipartUploads as a LIST; an abort as a DELETE (free, as a DELETE is). The
bytes of a PUT and of every part count as bytes up: a resumed upload counts only the parts it
sends. The versions capability's (cairn.storage.versions): each page of ListObjectVersions as a
LIST, a read of a version as a GET (its bytes down), the bucket's versioning status as a GET, a
copy of a version on top as a PUT (CopyObject), and a delete marker as a DELETE. The object
lock capability's: a retention read or the bucket's lock configuration as
a GET, a retention extended (PutObjectRetention) as a PUT, as S3 bills them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import TypeVar

from cairn.core.errors import ObjectMissing
from cairn.storage.archive import ArchiveStore, ObjectInfo
from cairn.storage.base import Content, Storage, StorageWrapper, content_size
from cairn.storage.objectlock import LockWrapper, ObjectLockStore, Retention
from cairn.storage.objectops import ObjectWrapper
from cairn.storage.objects import DEFAULT_TYPE, ObjectHead, ObjectStore, Part, PendingUpload
from cairn.storage.versions import ObjectVersion, VersionStore

T = TypeVar("T")

LIST_PAGE = 1000  # a LIST request returns at most this many names (S3 semantics)


@dataclass
class Usage:
    put: int = 0
    get: int = 0
    head: int = 0
    list: int = 0
    delete: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    restore: int = 0  # RestoreObject requests (archived objects)

    def as_dict(self) -> dict[str, int]:
        """The counts by name. ``restore`` only where there were any: a backup never makes
        one, and a snapshot's summary holds the other seven (docs/format.md §8)."""
        d = asdict(self)
        if not self.restore:
            del d["restore"]
        return d

    def minus(self, other: Usage) -> Usage:
        names = [f.name for f in fields(self)]
        return Usage(**{k: getattr(self, k) - getattr(other, k) for k in names})


class MeteredStorage(StorageWrapper):
    """``listed``: the bytes of the store's listing answers so far, where it can say
    (``S3Storage.listed_bytes``); they count as bytes down from the meter's start."""

    def __init__(self, inner: Storage, listed: Callable[[], int] | None = None) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self.usage = Usage()
        self._listed = listed
        self._listed_before = listed() if listed is not None else 0

    def snapshot(self) -> Usage:
        with self._lock:
            usage = Usage(**asdict(self.usage))
        if self._listed is not None:
            usage.bytes_down += self._listed() - self._listed_before
        return usage

    def count(self, request: str, up: int = 0) -> None:
        """One more request of a kind (a field of ``Usage``), that sent ``up`` bytes."""
        with self._lock:
            setattr(self.usage, request, getattr(self.usage, request) + 1)
            self.usage.bytes_up += up

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            data = self.inner.read(name, offset, length)
        except ObjectMissing:
            self._missed()
            raise
        with self._lock:
            self.usage.get += 1
            self.usage.bytes_down += len(data)
        return data

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        try:
            n = self.inner.read_into(name, offset, out)
        except ObjectMissing:
            self._missed()
            raise
        with self._lock:
            self.usage.get += 1
            self.usage.bytes_down += n
        return n

    def received(self, n: int) -> None:
        """One more GET, that brought ``n`` bytes."""
        with self._lock:
            self.usage.get += 1
            self.usage.bytes_down += n

    def _missed(self) -> None:
        """A GET answered 404 is a request the store bills all the same."""
        with self._lock:
            self.usage.get += 1

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        self.inner.write(name, data, metadata=metadata)
        with self._lock:
            self.usage.put += 1
            self.usage.bytes_up += content_size(data)

    def stat(self, name: str) -> int:
        try:
            return self.inner.stat(name)
        finally:
            with self._lock:
                self.usage.head += 1

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        return paged(self, lambda: self.inner.list(prefix))

    def delete(self, name: str) -> None:
        self.inner.delete(name)
        with self._lock:
            self.usage.delete += 1

    @property
    def archive(self) -> ArchiveStore | None:
        inner = self.inner.archive
        return None if inner is None else MeteredArchive(inner, self)

    @property
    def objects(self) -> ObjectStore | None:
        inner = self.inner.objects
        return None if inner is None else MeteredObjects(inner, self)

    @property
    def versions(self) -> VersionStore | None:
        inner = self.inner.versions
        return None if inner is None else MeteredVersions(inner, self)

    @property
    def object_lock(self) -> ObjectLockStore | None:
        inner = self.inner.object_lock
        return None if inner is None else MeteredLock(inner, self)


def paged(meter: MeteredStorage, listing: Callable[[], Iterable[T]]) -> Iterator[T]:
    """The items of ``listing()``, counting one LIST request per page as they are taken."""
    meter.count("list")
    for n, item in enumerate(listing()):
        if n and n % LIST_PAGE == 0:  # item 1000 (counting from 0) starts the next page
            meter.count("list")
        yield item


class MeteredArchive:
    """An archive capability whose requests count in ``meter``'s usage."""

    def __init__(self, inner: ArchiveStore, meter: MeteredStorage) -> None:
        self.inner = inner
        self.meter = meter

    def list_with_class(self, prefix: str) -> Iterator[ObjectInfo]:
        return paged(self.meter, lambda: self.inner.list_with_class(prefix))

    def request_restore(self, name: str, days: int, tier: str) -> None:
        try:
            self.inner.request_restore(name, days, tier)
        finally:
            self.meter.count("restore")

    def restore_status(self, name: str) -> str:
        try:
            return self.inner.restore_status(name)
        finally:
            self.meter.count("head")


class MeteredLock(LockWrapper):
    """An object lock capability whose requests count in ``meter``'s usage."""

    def __init__(self, inner: ObjectLockStore, meter: MeteredStorage) -> None:
        super().__init__(inner)
        self.meter = meter

    def bucket_locked(self) -> bool:
        try:
            return self.inner.bucket_locked()
        finally:
            self.meter.count("get")

    def retention(self, name: str) -> Retention | None:
        try:
            return self.inner.retention(name)
        finally:
            self.meter.count("get")

    def extend(self, name: str, until: datetime) -> None:
        try:
            self.inner.extend(name, until)
        finally:
            self.meter.count("put")


class MeteredObjects(ObjectWrapper):
    """An object capability whose requests and bytes count in ``meter``'s usage: those that
    send content once they succeeded (as ``write``), the others whatever their outcome."""

    def __init__(self, inner: ObjectStore, meter: MeteredStorage) -> None:
        super().__init__(inner)
        self.meter = meter

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        etag = self.inner.put_object(name, data, content_type=content_type, cold=cold)
        self.meter.count("put", content_size(data))
        return etag

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool:
        created = self.inner.create(name, data, content_type=content_type)
        self.meter.count("put", content_size(data))  # a refused create sent its body too
        return created

    def head(self, name: str) -> ObjectHead | None:
        try:
            return self.inner.head(name)
        finally:
            self.meter.count("head")

    def copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        try:
            return self.inner.copy(src, dst, content_type=content_type, cold=cold)
        finally:
            self.meter.count("put")

    def copy_part(
        self, name: str, upload_id: str, number: int, src: str, start: int, length: int
    ) -> Part:
        try:
            return self.inner.copy_part(name, upload_id, number, src, start, length)
        finally:
            self.meter.count("put")  # billed as a PUT; no byte goes through this host

    def start_upload(self, name: str, *, content_type: str, cold: bool = False) -> str:
        try:
            return self.inner.start_upload(name, content_type=content_type, cold=cold)
        finally:
            self.meter.count("put")

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part:
        part = self.inner.upload_part(name, upload_id, number, data)
        self.meter.count("put", content_size(data))
        return part

    def list_parts(self, name: str, upload_id: str) -> dict[int, Part] | None:
        try:
            return self.inner.list_parts(name, upload_id)
        finally:
            self.meter.count("list")

    def complete_upload(self, name: str, upload_id: str, parts: Sequence[Part]) -> str:
        try:
            return self.inner.complete_upload(name, upload_id, parts)
        finally:
            self.meter.count("put")

    def abort(self, name: str, upload_id: str) -> None:
        try:
            self.inner.abort(name, upload_id)
        finally:
            self.meter.count("delete")

    def uploads(self, prefix: str) -> Iterator[PendingUpload]:
        return paged(self.meter, lambda: self.inner.uploads(prefix))

    def listing(self, prefix: str) -> Iterator[tuple[str, ObjectHead]]:
        return paged(self.meter, lambda: self.inner.listing(prefix))


class MeteredVersions:
    """A versions capability whose requests and bytes count in ``meter``'s usage."""

    def __init__(self, inner: VersionStore, meter: MeteredStorage) -> None:
        self.inner = inner
        self.meter = meter

    def status(self) -> str:
        try:
            return self.inner.status()
        finally:
            self.meter.count("get")

    def versions(self, prefix: str) -> Iterator[ObjectVersion]:
        return paged(self.meter, lambda: self.inner.versions(prefix))

    def read_version(
        self, name: str, version_id: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        try:
            data = self.inner.read_version(name, version_id, offset, length)
        except ObjectMissing:
            self.meter.received(0)  # a GET answered 404 is billed all the same
            raise
        self.meter.received(len(data))
        return data

    def restore_version(
        self, name: str, version_id: str, *, storage_class: str | None = None
    ) -> str:
        try:
            return self.inner.restore_version(name, version_id, storage_class=storage_class)
        finally:
            self.meter.count("put")

    def hide(self, name: str) -> str:
        try:
            return self.inner.hide(name)
        finally:
            self.meter.count("delete")
