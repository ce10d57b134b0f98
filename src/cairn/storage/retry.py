"""Retries transient store failures: the one retry policy, and the wrappers that apply it.

A ``RetryPolicy`` says how many attempts a call gets, how long to wait between them
(exponential backoff with full jitter: a uniform wait between 0 and ``base_delay * 2**(n-1)``
after attempt n, at most ``max_delay``) and which errors are transient (by default
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
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import TypeVar

from cairn.core.errors import TransientStorageError
from cairn.storage.archive import ArchiveStore, ObjectInfo
from cairn.storage.base import Content, Storage, StorageWrapper

T = TypeVar("T")

_NAME_OF_ENTRY = itemgetter(0)  # list() yields (name, size)
_NAME_OF_INFO = attrgetter("name")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # in all, the first one included
    base_delay: float = 0.25  # seconds: the longest wait after the first attempt
    max_delay: float = 30.0  # the longest wait after any attempt
    jitter: bool = True  # a uniform wait up to the delay (full jitter); False: the delay itself
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
        return random.uniform(0, cap) if self.jitter else cap

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
