"""Retries transient store failures: the one retry policy, and the wrappers that apply it.

A ``RetryPolicy`` says how many attempts a call gets, how long to wait between them
(exponential backoff with jitter: after attempt n a uniform wait between half and all of
``base_delay * 2**(n-1)``, at most ``max_delay``; never less than half, so the attempts span a
known least time: with the defaults a request outlasts any outage shorter than 15.8 s, whatever
the draws) and which errors are transient (by default
``TransientStorageError``: throttling, 5xx, lost or refused connections). Anything else (a
missing object, access denied, a full disk) fails at once. Every retrying place in the storage
layer runs through a policy, in one of its two loops:

- ``call(fn)`` repeats one call;
- ``iterate(items, key)`` restarts a listing that failed part-way, and yields no item twice.

Each retry is told to the policy's ``notice`` (a front end shows it: one line on stderr), so
a store that keeps failing is never waited on in silence.

``RetryingStorage`` applies a policy to every operation of a store, and ``RetryingArchive`` to
every call of the store's archive capability, so both retry alike. Every operation is
idempotent on a write-once store, so repeating a write that may have landed is safe.

``RetryingVersions`` retries every request of the versions capability (cairn.storage.versions).
A copy of a version or a delete marker retried after an attempt that landed adds a second
copy or marker on top: one more version, never one less.

``RetryingObjects`` retries every request of the object capability (cairn.storage.objects),
each part of an upload on its own. Two of them are not idempotent, and an attempt whose
response was lost may have landed:

- a ``create`` retried after such an attempt finds the name taken, by itself as likely as by
  another writer. It then looks: the object is its own if it has the size and, read back, the
  very bytes it sent, and the create reports True. (Creates are small: heads and pieces. Only
  another writer creating the same bytes at the same moment is taken for this one, and then
  either answer is right.)
- a ``complete_upload`` retried after such an attempt finds the upload gone, completed. It
  then returns the ETag of the object if the object has the size of the parts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import TypeVar

from cairn.core.errors import TransientStorageError
from cairn.storage.archive import ArchiveStore, ObjectInfo
from cairn.storage.base import Content, Storage, StorageWrapper, content_chunks, content_size
from cairn.storage.objectlock import LockWrapper, ObjectLockStore, Retention, RetentionRule
from cairn.storage.objectops import ObjectWrapper
from cairn.storage.objects import (
    DEFAULT_TYPE,
    ObjectHead,
    ObjectStore,
    Part,
    PendingUpload,
    UploadMissing,
)
from cairn.storage.versions import ObjectVersion, VersionStore

T = TypeVar("T")

_NAME_OF_ENTRY = itemgetter(0)  # list() yields (name, size)
_NAME_OF_INFO = attrgetter("name")
_ID_OF_UPLOAD = attrgetter("upload_id")
_ID_OF_VERSION = attrgetter("name", "version_id")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # in all, the first one included
    base_delay: float = 0.25  # seconds: the longest wait after the first attempt
    max_delay: float = 30.0  # the longest wait after any attempt
    jitter: bool = True  # a uniform wait from half the delay to all of it; False: the delay itself
    transient: tuple[type[Exception], ...] = (TransientStorageError,)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    # told of each retry: one line, what failed, the wait, the attempt that failed of all
    notice: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (counting from 1)."""
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap) if self.jitter else cap

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, repeated after each transient failure until an attempt succeeds."""
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except self.transient as e:
                self._failed(attempt, e)
        raise AssertionError("unreachable")

    def iterate(
        self, items: Callable[[], Iterable[T]], key: Callable[[T], Hashable]
    ) -> Iterator[T]:
        """The items of ``items()``; a transient failure part-way starts it again, and an item
        whose ``key`` was yielded already is not yielded twice."""
        seen: set[Hashable] = set()
        for attempt in range(1, self.attempts + 1):
            try:
                for item in items():
                    k = key(item)
                    if k not in seen:
                        seen.add(k)
                        yield item
                return
            except self.transient as e:
                self._failed(attempt, e)

    def _failed(self, attempt: int, error: Exception) -> None:
        """After a failed attempt: give up (the last one), or wait before the next one."""
        if attempt >= self.attempts:
            raise type(error)(f"{error} (gave up after {attempt} attempts)") from None
        wait = self.delay(attempt)
        if self.notice is not None:
            self.notice(f"{error}; retrying in {wait:.1f} s ({attempt}/{self.attempts})")
        self.sleep(wait)


DEFAULT_POLICY = RetryPolicy()


class RetryingStorage(StorageWrapper):
    def __init__(self, inner: Storage, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        super().__init__(inner)
        self.policy = policy

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.policy.call(lambda: self.inner.read(name, offset, length))

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        return self.policy.call(lambda: self.inner.read_into(name, offset, out))

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        self.policy.call(lambda: self.inner.write(name, data, metadata=metadata))

    def stat(self, name: str) -> int:
        return self.policy.call(lambda: self.inner.stat(name))

    def delete(self, name: str) -> None:
        self.policy.call(lambda: self.inner.delete(name))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        return self.policy.iterate(lambda: self.inner.list(prefix), _NAME_OF_ENTRY)

    @property
    def archive(self) -> ArchiveStore | None:
        inner = self.inner.archive
        return None if inner is None else RetryingArchive(inner, self.policy)

    @property
    def objects(self) -> ObjectStore | None:
        inner = self.inner.objects
        return None if inner is None else RetryingObjects(inner, self.policy, self.inner.read)

    @property
    def versions(self) -> VersionStore | None:
        inner = self.inner.versions
        return None if inner is None else RetryingVersions(inner, self.policy)

    @property
    def object_lock(self) -> ObjectLockStore | None:
        inner = self.inner.object_lock
        return None if inner is None else RetryingLock(inner, self.policy)


class RetryingLock(LockWrapper):
    """An object lock capability whose requests are retried by ``policy`` (each is
    idempotent: extending twice to the same date is extending once)."""

    def __init__(self, inner: ObjectLockStore, policy: RetryPolicy) -> None:
        super().__init__(inner)
        self.policy = policy

    def bucket_locked(self) -> bool:
        return self.policy.call(self.inner.bucket_locked)

    def retention(self, name: str) -> Retention | None:
        return self.policy.call(lambda: self.inner.retention(name))

    def extend(self, name: str, until: datetime) -> None:
        self.policy.call(lambda: self.inner.extend(name, until))

    def configure_bucket(self, rule: RetentionRule, noncurrent_days: int | None) -> None:
        self.policy.call(lambda: self.inner.configure_bucket(rule, noncurrent_days))


class RetryingArchive:
    """An archive capability whose calls are retried by ``policy``."""

    def __init__(self, inner: ArchiveStore, policy: RetryPolicy) -> None:
        self.inner = inner
        self.policy = policy

    def list_with_class(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.policy.iterate(lambda: self.inner.list_with_class(prefix), _NAME_OF_INFO)

    def request_restore(self, name: str, days: int, tier: str) -> None:
        self.policy.call(lambda: self.inner.request_restore(name, days, tier))

    def restore_status(self, name: str) -> str:
        return self.policy.call(lambda: self.inner.restore_status(name))


class RetryingVersions:
    """A versions capability whose requests are retried by ``policy``."""

    def __init__(self, inner: VersionStore, policy: RetryPolicy) -> None:
        self.inner = inner
        self.policy = policy

    def status(self) -> str:
        return self.policy.call(self.inner.status)

    def versions(self, prefix: str) -> Iterator[ObjectVersion]:
        return self.policy.iterate(lambda: self.inner.versions(prefix), _ID_OF_VERSION)

    def read_version(
        self, name: str, version_id: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        return self.policy.call(lambda: self.inner.read_version(name, version_id, offset, length))

    def restore_version(
        self, name: str, version_id: str, *, storage_class: str | None = None
    ) -> str:
        restore = self.inner.restore_version
        return self.policy.call(lambda: restore(name, version_id, storage_class=storage_class))

    def hide(self, name: str) -> str:
        return self.policy.call(lambda: self.inner.hide(name))


class RetryingObjects(ObjectWrapper):
    """An object capability whose requests are retried by ``policy``; ``read`` reads an
    object back (the store's own read) where a create's outcome is in doubt."""

    def __init__(
        self, inner: ObjectStore, policy: RetryPolicy, read: Callable[[str], bytes]
    ) -> None:
        super().__init__(inner)
        self.policy = policy
        self.read = read

    def _doubtful(self, fn: Callable[[], T]) -> tuple[Callable[[], T], list[bool]]:
        """``fn`` as an attempt, and a flag set once an attempt failed transiently (and may
        have landed nonetheless)."""
        failed: list[bool] = []

        def attempt() -> T:
            try:
                return fn()
            except self.policy.transient:
                failed.append(True)
                raise

        return attempt, failed

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        put = self.inner.put_object
        return self.policy.call(lambda: put(name, data, content_type=content_type, cold=cold))

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool:
        attempt, failed = self._doubtful(
            lambda: self.inner.create(name, data, content_type=content_type)
        )
        created = self.policy.call(attempt)
        if created or not failed:
            return created
        head = self.head(name)
        if head is None or head.size != content_size(data):
            return False
        stored = self.policy.call(lambda: self.read(name))
        return stored == b"".join(bytes(c) for c in content_chunks(data))

    def head(self, name: str) -> ObjectHead | None:
        return self.policy.call(lambda: self.inner.head(name))

    def copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        copy = self.inner.copy
        return self.policy.call(lambda: copy(src, dst, content_type=content_type, cold=cold))

    def copy_part(
        self, name: str, upload_id: str, number: int, src: str, start: int, length: int
    ) -> Part:
        copy = self.inner.copy_part
        return self.policy.call(lambda: copy(name, upload_id, number, src, start, length))

    def start_upload(self, name: str, *, content_type: str, cold: bool = False) -> str:
        start = self.inner.start_upload
        return self.policy.call(lambda: start(name, content_type=content_type, cold=cold))

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part:
        return self.policy.call(lambda: self.inner.upload_part(name, upload_id, number, data))

    def list_parts(self, name: str, upload_id: str) -> dict[int, Part] | None:
        return self.policy.call(lambda: self.inner.list_parts(name, upload_id))

    def complete_upload(self, name: str, upload_id: str, parts: Sequence[Part]) -> str:
        attempt, failed = self._doubtful(lambda: self.inner.complete_upload(name, upload_id, parts))
        try:
            return self.policy.call(attempt)
        except UploadMissing:
            if not failed:
                raise
            head = self.head(name)
            if head is None or head.size != sum(p.size for p in parts):
                raise
            return head.etag

    def abort(self, name: str, upload_id: str) -> None:
        self.policy.call(lambda: self.inner.abort(name, upload_id))

    def uploads(self, prefix: str) -> Iterator[PendingUpload]:
        return self.policy.iterate(lambda: self.inner.uploads(prefix), _ID_OF_UPLOAD)

    def listing(self, prefix: str) -> Iterator[tuple[str, ObjectHead]]:
        return self.policy.iterate(lambda: self.inner.listing(prefix), _NAME_OF_ENTRY)
