"""Decrypted data blobs kept for the next read: a mount reads a file in the kernel's pieces
(128 KiB), and a blob is up to a few MiB, so without a cache every piece would fetch and
decrypt its whole blob again.

The cache holds at most ``limit`` bytes, the least recently used blob leaving first; it is
shared by every reader thread. Two threads missing the same blob at once fetch it once: the
second waits for the first's result.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future


class BlobCache:
    def __init__(self, fetch: Callable[[bytes], bytes], limit: int) -> None:
        self._fetch = fetch
        self.limit = limit
        self._held = 0
        self._blobs: OrderedDict[bytes, bytes] = OrderedDict()
        self._pending: dict[bytes, Future[bytes]] = {}
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes of blobs in the cache."""
        return self._held

    def get(self, blob_id: bytes) -> bytes:
        """The blob's decrypted bytes, from the cache or fetched (errors of the fetch raised)."""
        with self._lock:
            data = self._blobs.get(blob_id)
            if data is not None:
                self._blobs.move_to_end(blob_id)
                return data
            pending = self._pending.get(blob_id)
            if pending is None:
                mine: Future[bytes] = Future()
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
            self._keep(blob_id, data)
        mine.set_result(data)
        return data

    def _keep(self, blob_id: bytes, data: bytes) -> None:
        if len(data) > self.limit:
            return
        self._blobs[blob_id] = data
        self._held += len(data)
        while self._held > self.limit:
            _, old = self._blobs.popitem(last=False)
            self._held -= len(old)
