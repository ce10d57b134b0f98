"""Fills packs with encrypted blobs and uploads finished packs, several at a time.

One open pack per blob type (data and tree blobs never share a pack). A pack is finished when
it reaches the target size; finished packs upload on a bounded pool so memory stays flat: at
most ``uploads`` packs are in flight, and ``add`` blocks while the pool is full.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from cairn.repo import layout
from cairn.repo.index import PackInfo, PackRecord
from cairn.repo.pack import PackBuilder
from cairn.storage.base import Storage


class Packer:
    def __init__(
        self,
        storage: Storage,
        master_key: bytes,
        pack_size: int,
        on_uploaded: Callable[[PackRecord], None],
        uploads: int = 2,
        dry_run: bool = False,
    ) -> None:
        self._storage = storage
        self._master_key = master_key
        self._pack_size = pack_size
        self._on_uploaded = on_uploaded
        self._dry_run = dry_run
        self._lock = threading.Lock()
        self._open: dict[int, PackBuilder] = {}
        self._slots = threading.BoundedSemaphore(uploads)
        self._pool = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="cairn-upload")
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        self.packs_written = 0
        self.bytes_written = 0

    def add(self, blob_type: int, blob_id: bytes, payload: bytes, raw_length: int) -> int:
        """Adds one blob; returns its stored (encrypted) length."""
        self._raise_failure()
        with self._lock:
            builder = self._open.get(blob_type)
            if builder is None:
                builder = self._open[blob_type] = PackBuilder(self._master_key, blob_type)
            ref = builder.add(blob_id, payload, raw_length)
            full = len(builder) >= self._pack_size
            if full:
                del self._open[blob_type]
        if full:
            self._submit(builder)
        return ref.length

    def _submit(self, builder: PackBuilder) -> None:
        self._slots.acquire()
        try:
            fut = self._pool.submit(self._upload, builder)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()]
            self._futures.append(fut)

    def _upload(self, builder: PackBuilder) -> None:
        try:
            pack_id, data = builder.finish()
            if not self._dry_run:
                self._storage.write(
                    layout.pack_name(pack_id.hex()),
                    data,
                    metadata=builder.blob_type != layout.DATA_BLOB,
                )
            record = PackRecord(PackInfo(pack_id, builder.salt, builder.blob_type), builder.blobs)
            with self._lock:
                self.packs_written += 1
                self.bytes_written += len(data)
            self._on_uploaded(record)
        except BaseException as e:
            self._error = self._error or e
            raise
        finally:
            self._slots.release()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def flush(self) -> None:
        """Finishes the open packs and waits until every pack is uploaded."""
        with self._lock:
            builders = list(self._open.values())
            self._open.clear()
        for b in builders:
            if b.blobs:
                self._submit(b)
        with self._lock:
            futures = list(self._futures)
            self._futures.clear()
        for f in futures:
            f.exception()
        self._raise_failure()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
