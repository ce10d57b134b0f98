"""The blobs a restore (or a dump) writes, fetched as the schedule says.

A ``BlobSource`` makes a job's reads (``cairn.ops.restore.schedule``) with a ``BlobReader``:
each read into the reading thread's buffer, each blob authenticated and decrypted before a byte
of it is handed out. A blob the cache keeps is put in its ``Slot`` by the job that reads it;
a later job takes it from there, waiting if that job has not got to it yet (a job only ever
waits for one handed out before it, so they all finish). A read that fails is made again blob
by blob, so the error names the blob and stays with its file; only an archived pack stops a
job at once (every blob of it would answer the same).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterator, Mapping

from cairn.core.errors import CairnError, NotFoundError, ObjectArchived
from cairn.ops.restore.schedule import CACHED, RUN, ZERO, Fetch, Read, Span
from cairn.ops.restore.zeros import zeros
from cairn.repo.blobreader import BlobReader
from cairn.repo.index import IndexEntry
from cairn.repo.layout import DATA_BLOB
from cairn.repo.pack import BlobRef

_PENDING, _FILLED, _FAILED = 0, 1, 2


class Slot:
    """Where the cache keeps one blob for the jobs the schedule says take it from there."""

    __slots__ = ("data", "kept", "state", "takers")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.state = _PENDING
        self.takers = 0  # jobs scheduled to take the blob that have not yet
        self.kept = True  # in the schedule's model of the cache: later jobs may take it too

    def release(self) -> None:
        """Frees the blob once nobody takes it any more (with the source's lock held)."""
        if not self.kept and self.takers == 0:
            self.data = None


class BlobSource:
    def __init__(self, reader: BlobReader) -> None:
        self.reader = reader
        self._ready = threading.Condition()

    # the scheduler's Keeper: the blobs the cache keeps
    def new_slot(self) -> Slot:
        return Slot()

    def will_take(self, slot: Slot) -> None:
        with self._ready:
            slot.takers += 1

    def pushed_out(self, slot: Slot) -> None:
        with self._ready:
            slot.kept = False
            slot.release()

    def spans(self, spans: list[Span]) -> dict[bytes, bytes]:
        """The blobs of a batch's spans. A span or blob that fails here is left out (and read
        again alone, so that its error is reported with its file)."""
        loaded: dict[bytes, bytes] = {}
        reader = self.reader
        for (pack, start, length), blobs in spans:
            try:
                span = reader.read_range(pack, start, length)
            except ObjectArchived:
                raise
            except (OSError, CairnError):
                continue
            for blob_id, x in blobs:
                ref = BlobRef(blob_id, x.offset, x.length, x.raw_length)
                sealed = span[x.offset - start : x.offset - start + x.length]
                with contextlib.suppress(OSError, CairnError):
                    loaded[blob_id] = reader.open(pack, ref, sealed)
        return loaded

    def blobs(
        self,
        content: list[bytes],
        fetches: list[Fetch],
        shared: Collection[bytes] = (),
        loaded: Mapping[bytes, bytes] | None = None,
    ) -> Iterator[bytes | memoryview]:
        """The blobs of ``content`` in order, each valid until the next is taken: those in
        ``shared`` from ``loaded`` (the batch's spans), the others as ``fetches`` say. Call
        ``abandon(fetches)`` once done with them, whether all were taken or not."""
        if not shared:
            yield from self.fetched(fetches)
            return
        assert loaded is not None
        stream = self.fetched(fetches)
        try:
            for blob_id in content:
                if blob_id in shared:
                    data = loaded.get(blob_id)
                    yield data if data is not None else self.reader.load(blob_id, DATA_BLOB)
                else:
                    yield next(stream)
        finally:
            stream.close()

    def fetched(self, fetches: list[Fetch]) -> Iterator[bytes | memoryview]:
        """The blobs ``fetches`` have, in order, each valid until the next is taken."""
        reader = self.reader
        for how, blobs, read, slot in fetches:
            if how == RUN:
                if len(blobs) > 1:
                    yield from self._run(blobs, read)
                    continue
                blob_id, x = blobs[0]
                assert x is not None and read is not None
                try:
                    if x.pack.blob_type != DATA_BLOB:
                        reader.entry(blob_id, DATA_BLOB)  # says what it is instead
                    sealed = reader.read_range(x.pack, x.offset, x.length)
                    ref = BlobRef(blob_id, x.offset, x.length, x.raw_length)
                    data = reader.open_view(x.pack, ref, sealed)
                except BaseException:
                    if slot is not None:
                        self._settle(slot, None)
                    raise
                if slot is not None:
                    data = bytes(data)
                    self._settle(slot, data)
                yield data
            elif how == CACHED:
                kept = self._take(slot)
                yield kept if kept is not None else reader.load_view(blobs[0][0], DATA_BLOB)
            elif how == ZERO:
                x = blobs[0][1]
                assert x is not None
                yield zeros(x.raw_length)
            else:
                raise NotFoundError(f"blob {blobs[0][0].hex()} is not in the index")

    def _run(
        self, blobs: tuple[tuple[bytes, IndexEntry | None], ...], read: Read | None
    ) -> Iterator[bytes | memoryview]:
        """A run of blobs stored back to back, read with one request. A run that fails is read
        again blob by blob (not through the read buffer, which holds the rest of the run)."""
        assert read is not None
        reader = self.reader
        pack, start, length = read
        span: memoryview | None = None
        try:
            span = reader.read_range(pack, start, length)
        except ObjectArchived:
            raise
        except (OSError, CairnError):
            pass
        for blob_id, x in blobs:
            data = None
            if span is not None and x is not None:
                ref = BlobRef(blob_id, x.offset, x.length, x.raw_length)
                at = x.offset - start
                with contextlib.suppress(OSError, CairnError):
                    data = reader.open_view(pack, ref, span[at : at + x.length])
            yield data if data is not None else reader.load(blob_id, DATA_BLOB)

    def abandon(self, fetches: list[Fetch]) -> None:
        """Done with ``fetches``: a blob they were to keep and did not (their file failed or
        was skipped) is read by whoever takes it from the cache."""
        for f in fetches:
            slot = f.slot
            if f.how == RUN and slot is not None and slot.state == _PENDING:
                self._settle(slot, None)

    def _settle(self, slot: Slot, data: bytes | None) -> None:
        with self._ready:
            if slot.state == _PENDING:
                slot.data = data
                slot.state = _FILLED if data is not None else _FAILED
                slot.release()
                self._ready.notify_all()

    def _take(self, slot: Slot) -> bytes | None:
        """The blob in ``slot``, once the job reading it has put it there; None if it failed."""
        with self._ready:
            while slot.state == _PENDING:
                self._ready.wait()
            data = slot.data
            slot.takers -= 1
            slot.release()
        return data
