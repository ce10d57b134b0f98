"""Decrypted data blobs kept for the next read: a mount reads a file in the kernel's pieces
(128 KiB), and a blob is up to a few MiB, so without a cache every piece would fetch and
decrypt its whole blob again.

The cache holds at most ``limit`` bytes, the least recently used blob leaving first; it is
shared by every reader thread. Two threads missing the same blob at once fetch it once: the
second waits for the first's result.

Blobs leaving the cache are freed, but malloc keeps the pages of those it placed in its heaps
(the blobs of small files; larger ones are mappings of their own, unmapped when freed): a
heap gives back only what is free at its top. A tar of a snapshot then held a cache's worth
of small files' blobs in the heaps, freed, and another of large files' blobs in mappings,
twice the cache. So each time blobs of an eighth of the cache's size have left it, ``release``
(``memory.trim_malloc`` in a mount) hands the freed pages back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

Blob = bytes | memoryview  # a blob's bytes (a view of a buffer of its own, not shared)
RELEASE_PART = 8  # memory is given back each time this part of the limit has left the cache


class BlobCache:
    def __init__(
        self,
        fetch: Callable[[bytes], Blob],
        limit: int,
        release: Callable[[], object] | None = None,
    ) -> None:
        self._fetch = fetch
        self.limit = limit
        self._release = release
        self._release_every = max(limit // RELEASE_PART, 1)
        self._dropped = 0  # bytes that left the cache since memory was last given back
        self._held = 0
        self._blobs: OrderedDict[bytes, Blob] = OrderedDict()
        self._pending: dict[bytes, Future[Blob]] = {}
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes of blobs in the cache."""
        return self._held

    def get(self, blob_id: bytes) -> Blob:
        """The blob's decrypted bytes, from the cache or fetched (errors of the fetch raised)."""
        with self._lock:
            data = self._blobs.get(blob_id)
            if data is not None:
                self._blobs.move_to_end(blob_id)
                return data
            pending = self._pending.get(blob_id)
            if pending is None:
                mine: Future[Blob] = Future()
                self._pending[blob_id] = mine
        if pending is not None:
            return pending.result()
        try:
            data = self._fetch(blob_id)
        except BaseException as e:
            with self._lock:
                del self._pending[blob_id]
            mine.set_exception(e)
            raise
        with self._lock:
            del self._pending[blob_id]
            release = self._keep(blob_id, data)
        mine.set_result(data)
        if release and self._release is not None:
            self._release()
        return data

    def _keep(self, blob_id: bytes, data: Blob) -> bool:
        """Keeps the blob, dropping the least recently used beyond the limit; whether memory
        is to be given back now."""
        if len(data) > self.limit:
            return False
        self._blobs[blob_id] = data
        self._held += len(data)
        while self._held > self.limit:
            _, old = self._blobs.popitem(last=False)
            self._held -= len(old)
            self._dropped += len(old)
        if self._dropped < self._release_every:
            return False
        self._dropped = 0
        return True
