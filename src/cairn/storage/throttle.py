"""Bandwidth caps for uploads and downloads, shared by all threads (token buckets).

An upload waits for its bytes' worth of tokens before it is passed on; a download takes its
tokens after it arrives. Tokens accrue at the configured rate with at most ``burst`` seconds
of credit, so over any period longer than a few objects the average rate stays at the cap.
The object capability's uploads (a PUT, a create-only PUT, every part of an upload in parts)
share the upload cap; its other requests carry no content and pass freely. The versions
capability's reads of a version share the download cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cairn.storage.base import Content, Storage, StorageWrapper, content_size
from cairn.storage.objectops import ObjectWrapper
from cairn.storage.objects import DEFAULT_TYPE, ObjectStore, Part
from cairn.storage.versions import VersionStore, VersionWrapper

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

    @property
    def objects(self) -> ObjectStore | None:
        inner = self.inner.objects
        if inner is None or self._up is None:
            return inner
        return ThrottledObjects(inner, self._up)

    @property
    def versions(self) -> VersionStore | None:
        inner = self.inner.versions
        if inner is None or self._down is None:
            return inner
        return ThrottledVersions(inner, self._down)


class ThrottledVersions(VersionWrapper):
    """A versions capability whose reads of a version take ``bucket``'s tokens."""

    def __init__(self, inner: VersionStore, bucket: TokenBucket) -> None:
        super().__init__(inner)
        self.bucket = bucket

    def read_version(
        self, name: str, version_id: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        data = self.inner.read_version(name, version_id, offset, length)
        self.bucket.take(len(data))
        return data


class ThrottledObjects(ObjectWrapper):
    """An object capability whose uploads wait for ``bucket``'s tokens."""

    def __init__(self, inner: ObjectStore, bucket: TokenBucket) -> None:
        super().__init__(inner)
        self.bucket = bucket

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        self.bucket.take(content_size(data))
        return self.inner.put_object(name, data, content_type=content_type, cold=cold)

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool:
        self.bucket.take(content_size(data))
        return self.inner.create(name, data, content_type=content_type)

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part:
        self.bucket.take(content_size(data))
        return self.inner.upload_part(name, upload_id, number, data)
