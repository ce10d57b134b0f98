"""Bandwidth caps for uploads and downloads, shared by all threads (token buckets).

An upload waits for its bytes' worth of tokens before it is passed on; a download takes its
tokens after it arrives. Tokens accrue at the configured rate with at most ``burst`` seconds
of credit, so over any period longer than a few objects the average rate stays at the cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cairn.storage.base import Content, Storage, StorageWrapper, content_size

PIECE = 64 << 10


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(rate * burst, PIECE)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        """Blocks until ``n`` bytes may pass."""
        while n > 0:
            piece = min(n, PIECE)
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                self._tokens -= piece
                wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            if wait > 0:
                self._sleep(wait)
            n -= piece


class ThrottledStorage(StorageWrapper):
    def __init__(
        self, inner: Storage, upload: float | None = None, download: float | None = None
    ) -> None:
        """``upload``/``download``: bytes per second, or None for no cap."""
        super().__init__(inner)
        self._up = TokenBucket(upload) if upload else None
        self._down = TokenBucket(download) if download else None

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        if self._up is not None:
            self._up.take(content_size(data))
        self.inner.write(name, data, metadata=metadata)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.read(name, offset, length)
        if self._down is not None:
            self._down.take(len(data))
        return data

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        n = self.inner.read_into(name, offset, out)
        if self._down is not None:
            self._down.take(n)
        return n
