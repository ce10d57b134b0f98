"""The blobs of many files, in the order they are written out, read ahead across files.

A writer that must put files out one after the other (``cairn dump``'s tar stream) and read each
file's blobs only when it gets to it would wait a round trip per file: a tar of 5,000 small
files from a store 80 ms away would spend most of its time waiting. ``BlobStream`` is told the
files to come (``add``: their blob ids, in the order they will be taken) and reads ahead of the
writer, across files: the blobs of the next files are scheduled together
(``Scheduler.fetches``), so small files stored back to back in a pack are read with one request,
and those reads are kept in flight on a thread pool, at most ``reads`` of them and about
``budget`` bytes of blobs beyond what the writer has taken. When the reads run short it asks for
more files (``more``), so the files to come are looked at only as far as the reads need.

The writer takes each file's blobs with ``take`` in the order the files were added; blobs of
zeros (``cairn.ops.restore.zeros``) are never read, and a sparse member can skip them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from cairn.ops.restore.schedule import ZERO, Fetch, Scheduler
from cairn.ops.restore.source import BlobSource
from cairn.ops.restore.zeros import zeros

BATCH_BYTES = 4 << 20  # blobs of the files to come scheduled together (runs across files)


class BlobStream:
    def __init__(
        self,
        schedule: Scheduler,
        source: BlobSource,
        pool: ThreadPoolExecutor,
        more: Callable[[], bool],
        reads: int,
        budget: int,
        raw_length: Callable[[bytes], int],
    ) -> None:
        """``more``: adds the next file to come (``add``), if any; False when it added none
        (there are no more, or the writer is far enough behind for now). ``raw_length``: a
        blob's length (0 for one the index lacks: its read fails)."""
        self._schedule = schedule
        self._source = source
        self._pool = pool
        self._more = more
        self._reads = max(1, reads)
        self._budget = budget
        self._raw_length = raw_length
        self._unscheduled: list[bytes] = []  # blob ids added, not yet scheduled
        self._unscheduled_bytes = 0
        self._scheduled: deque[Fetch] = deque()  # in order, not yet started
        self._started: deque[tuple[Fetch, Future[list[bytes]] | None, int]] = deque()
        self._in_flight = 0  # started reads not yet taken
        self._ahead = 0  # bytes of blobs started and not yet taken
        self._current: deque[tuple[bool, bytes | int]] = deque()  # (zeros?, data or length)

    # ------------------------------------------------------------------ the files to come
    def add(self, blob_ids: list[bytes]) -> None:
        """A file whose blobs ``take`` will be asked for after those of the files before it."""
        self._unscheduled.extend(blob_ids)
        self._unscheduled_bytes += sum(self._raw_length(b) for b in blob_ids)

    def _schedule_more(self) -> bool:
        """Schedules the blobs of the next files (asking for more files as needed); False when
        there is nothing left to schedule."""
        while self._unscheduled_bytes < BATCH_BYTES and self._more():
            pass
        if not self._unscheduled:
            return False
        self._scheduled.extend(self._schedule.fetches(self._unscheduled))
        self._unscheduled, self._unscheduled_bytes = [], 0
        return True

    def _start(self) -> None:
        """Starts reads until ``reads`` are in flight or ``budget`` bytes are ahead."""
        while self._in_flight < self._reads and (not self._started or self._ahead < self._budget):
            if not self._scheduled and not self._schedule_more():
                return
            fetch = self._scheduled.popleft()
            if fetch.how == ZERO:  # nothing to read
                self._started.append((fetch, None, 0))
                continue
            size = sum(x.raw_length for _, x in fetch.blobs if x is not None)
            self._started.append((fetch, self._pool.submit(self._load, fetch), size))
            self._in_flight += 1
            self._ahead += size

    def _load(self, fetch: Fetch) -> list[bytes]:
        """The blobs of one fetch, as bytes of their own (they go to another thread)."""
        return [bytes(data) for data in self._source.fetched([fetch])]

    # ------------------------------------------------------------------ the writer's side
    def take(self, count: int, holes: bool = False) -> Iterator[bytes]:
        """The next ``count`` blobs (one file's), in order; ``holes``: without the blobs of
        zeros."""
        for _ in range(count):
            if not self._current:
                self._next_fetch()
            is_zero, data = self._current.popleft()
            if is_zero:
                if not holes:
                    assert isinstance(data, int)
                    yield zeros(data)
                continue
            assert isinstance(data, bytes)
            yield data

    def _next_fetch(self) -> None:
        self._start()
        fetch, future, size = self._started.popleft()
        if future is None:
            x = fetch.blobs[0][1]
            self._current.append((True, x.raw_length if x is not None else 0))
        else:
            self._in_flight -= 1
            self._ahead -= size
            blobs = future.result()
            self._current.extend((False, data) for data in blobs)
        self._start()

    def close(self) -> None:
        """Stops reading ahead: reads not started are dropped, and a blob one of them was to
        keep for a later one is left to be read by whoever takes it (a read under way that
        waits for it is woken). The pool's owner waits for the reads under way."""
        for _, future, _ in self._started:
            if future is not None:
                future.cancel()
        self._source.abandon([*self._scheduled, *(fetch for fetch, _, _ in self._started)])
        self._scheduled.clear()
        self._started.clear()
