"""Fills packs with encrypted blobs and uploads finished packs, several at a time.

One open pack per blob type (data and tree blobs never share a pack). A pack is finished when
the next blob would take it past the target size; finished packs upload on a pool of
``uploads`` threads. Per blob type, at most one pack being filled and one per upload exist
(``add`` waits while all are busy), so memory stays flat. Data packs are built in buffers
reused from pack to pack, whose pages are faulted in once, not once per pack, and only as far
as they are filled; or, with ``spool``, in temporary files (cairn.repo.packsink.FileSink),
which takes no more memory than the largest blob whatever the pack size and uploads. Tree
packs, small in most backups, grow as needed in memory instead of holding a whole pack's worth.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cairn.core.memory import lazy_buffer
from cairn.repo import layout
from cairn.repo.index import PackColumns, PackInfo, PackRecord
from cairn.repo.limits import MAX_DATA_BLOB
from cairn.repo.pack import PackBuilder
from cairn.repo.packsink import FileSink, MemorySink, PackBuffer, PackSink
from cairn.storage.base import Content, SpooledContent, Storage, content_size

# a data blob sealed into a pack: the largest chunk, its framing and the tag, with room to spare
STAGE_BYTES = MAX_DATA_BLOB + (64 << 10)


@dataclass(frozen=True)
class Spool:
    """Data packs are built in temporary files in ``directory`` (None: the system's)."""

    directory: str | None = None


class Packer:
    def __init__(
        self,
        storage: Storage,
        master_key: bytes,
        pack_size: int,
        on_uploaded: Callable[[PackRecord], None],
        uploads: int = 2,
        dry_run: bool = False,
        spool: Spool | None = None,
        first_pack_size: int | None = None,
    ) -> None:
        """``first_pack_size``: the first data pack is finished at this size rather than
        ``pack_size``, and each one after it at twice the size of the one before, up to
        ``pack_size`` (the first uploads start that much sooner, and the next ones follow
        before the link runs dry; 8, 16, 32, then 40 MiB packs for a fifth of 40 MiB)."""
        self._storage = storage
        self._master_key = master_key
        self._pack_size = pack_size
        # what each blob type's open pack may grow to
        self._limit = {t: pack_size for t in layout.BLOB_TYPES}
        if first_pack_size is not None:
            self._limit[layout.DATA_BLOB] = min(pack_size, first_pack_size)
        self._on_uploaded = on_uploaded
        self._dry_run = dry_run
        self._spool = spool
        self._stage: memoryview | None = None  # a spooled pack's staging buffer (one at a time)
        self._lock = threading.Lock()
        self._open: dict[int, PackBuilder] = {}
        self._buffers = {t: threading.BoundedSemaphore(uploads + 1) for t in layout.BLOB_TYPES}
        self._spare: list[PackBuffer] = []
        self._capacity = pack_size + (64 << 10)  # a full pack never needs more
        self._pool = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="cairn-upload")
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        self.packs_written = 0
        self.tree_packs_written = 0
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
                    not builder.blobs or builder.size_with(len(plaintext)) <= self._limit[blob_type]
                ):
                    return builder.add(blob_id, plaintext, raw_length).length
                if builder is not None:
                    del self._open[blob_type]
                    self._limit[blob_type] = min(self._pack_size, 2 * self._limit[blob_type])
            if builder is not None:
                self._submit(builder)
            self._buffers[blob_type].acquire()
            try:
                sink = self._new_sink(blob_type)
            except BaseException:
                self._buffers[blob_type].release()
                raise
            with self._lock:
                if blob_type not in self._open:
                    self._open[blob_type] = PackBuilder(self._master_key, blob_type, sink)
                    continue
            self._give_back(blob_type, sink)  # another thread opened a pack meanwhile

    def add_many(
        self, blob_type: int, blobs: list[tuple[bytes, bytes | memoryview, int]]
    ) -> list[int]:
        """``add`` for several blobs, (id, framed payload, raw length) each, in this order:
        the open pack takes as many as fit under one acquisition of the lock."""
        out: list[int] = []
        i, n = 0, len(blobs)
        while i < n:
            self._raise_failure()
            with self._lock:
                builder = self._open.get(blob_type)
                if builder is not None:
                    limit = self._limit[blob_type]
                    while i < n:
                        blob_id, payload, raw_length = blobs[i]
                        if builder.blobs and builder.size_with(len(payload)) > limit:
                            break
                        out.append(builder.add(blob_id, payload, raw_length).length)
                        i += 1
            if i < n:  # the pack is full (or none is open): ``add`` finishes it and opens one
                out.append(self.add(blob_type, *blobs[i]))
                i += 1
        return out

    def _new_sink(self, blob_type: int) -> PackSink:
        if blob_type != layout.DATA_BLOB:
            return MemorySink()
        if self._spool is not None:
            with self._lock:
                # one data pack is filled at a time (under the lock), so one stage serves all
                if self._stage is None:
                    self._stage = lazy_buffer(STAGE_BYTES)
            return FileSink(self._spool.directory, self._stage)
        with self._lock:
            return MemorySink(self._spare.pop() if self._spare else lazy_buffer(self._capacity))

    def _give_back(self, blob_type: int, sink: PackSink) -> None:
        buffer = sink.close()
        # a tree pack's buffer, or one grown for a huge blob, is not kept
        if blob_type == layout.DATA_BLOB and buffer is not None and len(buffer) == self._capacity:
            with self._lock:
                self._spare.append(buffer)
        self._buffers[blob_type].release()

    def _submit(self, builder: PackBuilder) -> None:
        self._track(self._pool.submit(self._upload, builder))

    def _track(self, fut: Future[None]) -> None:
        """An upload ``flush`` waits for (those done already are let go)."""
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()]
            self._futures.append(fut)

    def _upload(self, builder: PackBuilder) -> None:
        try:
            pack_id, data = builder.finish()
            record = PackRecord(PackInfo(pack_id, builder.salt, builder.blob_type), builder.blobs)
            self._deliver(record, data)
            if isinstance(data, memoryview):
                data.release()
            self._count(builder.blob_type, len(builder))
            self._on_uploaded(record)
        except BaseException as e:
            self._error = self._error or e
            raise
        finally:
            self._give_back(builder.blob_type, builder.sink)

    def _deliver(self, record: PackRecord | PackColumns, data: Content) -> None:
        """Stores a finished pack (in a backup's reading process: hands it to the backup's
        own, cairn.ops.backup.reader_process)."""
        if not self._dry_run:
            self._storage.write(
                layout.pack_name(record.info.id.hex()),
                data,
                metadata=record.info.blob_type != layout.DATA_BLOB,
            )

    def _count(self, blob_type: int, length: int) -> None:
        with self._lock:
            self.packs_written += 1
            self.tree_packs_written += int(blob_type == layout.TREE_BLOB)
            self.bytes_written += length

    def store_sealed(
        self,
        record: PackColumns,
        data: bytes | SpooledContent,
        on_stored: Callable[[PackColumns], None],
    ) -> None:
        """Uploads a pack finished elsewhere (by the backup's reading process) on the upload
        pool, as one of this packer's own: counted with them, and waiting while as many packs
        of its type are in flight as this packer would hold itself (so memory stays as flat).
        ``on_stored`` is told of it once it is stored. A pack in a file (``SpooledContent``):
        the file's descriptor is this packer's, closed once the pack is stored (or not)."""
        blob_type = record.info.blob_type
        try:
            self._raise_failure()
            self._buffers[blob_type].acquire()
        except BaseException:
            _close_spooled(data)
            raise
        try:
            fut = self._pool.submit(self._upload_sealed, record, data, on_stored)
        except BaseException:
            self._buffers[blob_type].release()
            _close_spooled(data)
            raise
        self._track(fut)

    def _upload_sealed(
        self,
        record: PackColumns,
        data: bytes | SpooledContent,
        on_stored: Callable[[PackColumns], None],
    ) -> None:
        try:
            self._deliver(record, data)
            self._count(record.info.blob_type, content_size(data))
            on_stored(record)
        except BaseException as e:
            self._error = self._error or e
            raise
        finally:
            _close_spooled(data)
            self._buffers[record.info.blob_type].release()

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
                self._give_back(b.blob_type, b.sink)
        with self._lock:
            futures = list(self._futures)
            self._futures.clear()
        for f in futures:
            f.exception()
        self._raise_failure()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _close_spooled(data: Content) -> None:
    if isinstance(data, SpooledContent):
        os.close(data.fd)
