"""Fills packs with encrypted blobs and uploads finished packs, several at a time.

One open pack per blob type (data and tree blobs never share a pack). A pack is finished when
the next blob would take it past the target size; finished packs upload on a pool of
``uploads`` threads. Per blob type, at most one pack being filled and one per upload are in
memory (``add`` waits while all are busy), so memory stays flat. Data packs are built in
buffers reused from pack to pack, whose pages are faulted in once, not once per pack, and only
as far as they are filled; tree packs, small in most backups, grow as needed instead of holding
a whole pack's worth of memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from cairn.core.memory import lazy_buffer
from cairn.repo import layout
from cairn.repo.index import PackInfo, PackRecord
from cairn.repo.pack import PackBuffer, PackBuilder
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
        self._buffers = {t: threading.BoundedSemaphore(uploads + 1) for t in layout.BLOB_TYPES}
        self._spare: list[PackBuffer] = []
        self._capacity = pack_size + (64 << 10)  # a full pack never needs more
        self._pool = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="cairn-upload")
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        self.packs_written = 0
        self.bytes_written = 0

    def add(
        self, blob_type: int, blob_id: bytes, plaintext: bytes | memoryview, raw_length: int
    ) -> int:
        """Adds one blob (its framed payload); returns its stored (encrypted) length.

        A blob larger than a whole pack gets a pack of its own."""
        while True:
            self._raise_failure()
            with self._lock:
                builder = self._open.get(blob_type)
                if builder is not None and (
                    not builder.blobs or builder.size_with(len(plaintext)) <= self._pack_size
                ):
                    return builder.add(blob_id, plaintext, raw_length).length
                if builder is not None:
                    del self._open[blob_type]
            if builder is not None:
                self._submit(builder)
            buffer = self._take_buffer(blob_type)
            with self._lock:
                if blob_type not in self._open:
                    self._open[blob_type] = PackBuilder(self._master_key, blob_type, buffer)
                    continue
            self._give_back(blob_type, buffer)  # another thread opened a pack meanwhile

    def _take_buffer(self, blob_type: int) -> PackBuffer:
        self._buffers[blob_type].acquire()
        if blob_type != layout.DATA_BLOB:
            return bytearray()
        with self._lock:
            return self._spare.pop() if self._spare else lazy_buffer(self._capacity)

    def _give_back(self, blob_type: int, buffer: PackBuffer) -> None:
        # a tree pack's buffer, or one grown for a huge blob, is not kept
        if blob_type == layout.DATA_BLOB and len(buffer) == self._capacity:
            with self._lock:
                self._spare.append(buffer)
        self._buffers[blob_type].release()

    def _submit(self, builder: PackBuilder) -> None:
        fut = self._pool.submit(self._upload, builder)
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()]
            self._futures.append(fut)

    def _upload(self, builder: PackBuilder) -> None:
        buffer = None
        try:
            pack_id, buffer, length = builder.finish()
            if not self._dry_run:
                with memoryview(buffer)[:length] as data:
                    self._storage.write(
                        layout.pack_name(pack_id.hex()),
                        data,
                        metadata=builder.blob_type != layout.DATA_BLOB,
                    )
            record = PackRecord(PackInfo(pack_id, builder.salt, builder.blob_type), builder.blobs)
            with self._lock:
                self.packs_written += 1
                self.bytes_written += length
            self._on_uploaded(record)
        except BaseException as e:
            self._error = self._error or e
            raise
        finally:
            self._give_back(builder.blob_type, buffer if buffer is not None else builder.release())

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
            else:
                self._give_back(b.blob_type, b.release())
        with self._lock:
            futures = list(self._futures)
            self._futures.clear()
        for f in futures:
            f.exception()
        self._raise_failure()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
