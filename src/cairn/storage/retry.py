"""Retries transient store failures with exponential backoff and full jitter.

Only ``TransientStorageError`` is retried (throttling, 5xx, lost or refused connections);
anything else (missing object, access denied, a full disk) fails at once. Every operation is
idempotent on a write-once store, so repeating a write that may have landed is safe. A list
that fails part-way is restarted and the names already yielded are not yielded twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from cairn.core.errors import TransientStorageError
from cairn.storage.base import Buffer, Storage, StorageWrapper

T = TypeVar("T")


class RetryingStorage(StorageWrapper):
    def __init__(
        self,
        inner: Storage,
        attempts: int = 8,
        base_delay: float = 0.25,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str, int, Exception], None] | None = None,
    ) -> None:
        super().__init__(inner)
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._on_retry = on_retry
        self.retries = 0

    def _failed(self, what: str, attempt: int, error: TransientStorageError) -> None:
        """After a failed attempt: give up, or wait (full jitter) before the next one."""
        if attempt == self.attempts:
            raise TransientStorageError(f"{error} (gave up after {attempt} attempts)") from None
        self.retries += 1
        if self._on_retry is not None:
            self._on_retry(what, attempt, error)
        self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except TransientStorageError as e:
                self._failed(what, attempt, e)
        raise AssertionError("unreachable")

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(name, lambda: self.inner.read(name, offset, length))

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        return self._call(name, lambda: self.inner.read_into(name, offset, out))

    def write(self, name: str, data: Buffer, *, metadata: bool = True) -> None:
        self._call(name, lambda: self.inner.write(name, data, metadata=metadata))

    def stat(self, name: str) -> int:
        return self._call(name, lambda: self.inner.stat(name))

    def delete(self, name: str) -> None:
        self._call(name, lambda: self.inner.delete(name))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        seen: set[str] = set()
        for attempt in range(1, self.attempts + 1):
            try:
                for name, size in self.inner.list(prefix):
                    if name not in seen:
                        seen.add(name)
                        yield name, size
                return
            except TransientStorageError as e:
                self._failed(prefix, attempt, e)
