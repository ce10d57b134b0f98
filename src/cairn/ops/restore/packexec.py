"""Running a restore in pack order (``cairn.ops.restore.packorder``): the reads on threads, each
blob written to every place that has it, each file completed once its last blob is written.

The schedule runs on a thread of its own (it reads the trees as it goes), at most one window
ahead of the calling thread (``_Ahead``), so the next window is planned while the reads of
this one are made, and the reads never wait for the walk when it is ahead. The calling thread
takes the jobs in the schedule's order, makes directories and special files, and hands each
window's reads to the threads, at most four times as many as threads in flight: ``workers``
threads for large reads, as many again for reads of at most ``SMALL_READ`` (a pack's needed
blobs scattered between windows), so that their round trips overlap without more large
buffers. Which reads are made is the schedule's alone (a pure function of the entries, the
index, ``read_gap`` and ``window_places``): the cost estimate counts the same.

A thread makes one request, authenticates and decrypts the blobs in it one at a time, and
writes each where it goes (``os.pwrite``, holding the file's lock: ext4 serialises writes to
one file anyway). A request that fails is made again blob by blob (requests beyond the
schedule's, as are the store's own retries), so an error names its blob and stays with the
files that have it; a file with a blob that fails is removed, never left with wrong bytes.

Files are created when their first blob arrives (or at completion, for one with none), with a
mode that lets them be opened again: at most ``OPEN_FILES`` stay open, the least recently
written closed first and opened again when more of its blobs arrive.

An archived pack stops the restore as ``Executor`` does: with ``stop_when_archived``, the reads
not started end at once, every file not complete is removed, and the ``ObjectArchived`` is
raised once the threads are done.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from cairn.core.errors import CairnError, ObjectArchived
from cairn.ops.restore.execute import Executor, Outcome
from cairn.ops.restore.packorder import FileJob, Job, PackRead, Window, schedule
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.schedule import Link
from cairn.ops.restore.zeros import write_data
from cairn.repo.pack import BlobRef

OPEN_FILES = 256  # files held open at once
# reads this small go to threads of their own: many at once pay their round trips together, and
# those threads' buffers never grow past this (a thread keeps the largest buffer it needed)
SMALL_READ = 512 << 10
AHEAD_JOBS = 1024  # directories and links handed over at once when no window comes between


class _Open:
    """A file's state while its blobs arrive."""

    __slots__ = ("end", "error", "fd", "left", "lock", "shown", "written")

    def __init__(self, left: int, error: BaseException | None) -> None:
        self.lock = threading.Lock()
        self.fd = -1
        self.left = left
        self.error = error
        self.written = 0
        self.end = 0
        self.shown = 0  # bytes told to progress (the holes are told when the file completes)


class PackExecutor(Executor):
    open_files = OPEN_FILES

    def run(self, entries: Iterable[Entry]) -> None:
        self._lru: OrderedDict[FileJob, None] = OrderedDict()  # open files, least recent first
        self._lru_lock = threading.Lock()
        self._started: dict[FileJob, None] = {}  # created and not complete
        self._started_lock = threading.Lock()
        links: list[Link] = []
        dirs: list[Entry] = []
        files: list[Entry] = []  # kept only to verify them
        pending: deque[Future[Outcome]] = deque()
        workers = self.options.workers
        window = 4 * workers
        pool = ThreadPoolExecutor(workers, thread_name_prefix="cairn-restore")
        small_pool = ThreadPoolExecutor(workers, thread_name_prefix="cairn-restore-small")
        jobs = schedule(
            entries,
            self.repo.index.get,
            self.options.read_gap,
            self.options.window_places,
            zero=self.zero,
        )
        ahead = _Ahead(jobs)
        with pool, small_pool:
            try:
                for job in ahead:
                    if self._stop.is_set():
                        break
                    if isinstance(job, Window):
                        self._start_window(job, files)
                        for pr in job.reads:
                            if self._stop.is_set():
                                break
                            self._first(pr)
                            to = small_pool if pr.read.length <= SMALL_READ else pool
                            pending.append(to.submit(self._read, pr))
                            while len(pending) > window:
                                self._collect(pending.popleft())
                    elif isinstance(job, Link):
                        links.append(job)
                    else:
                        self._make(job, dirs)
                while pending:
                    self._collect(pending.popleft())
            except BaseException:
                self._stop.set()  # the reads not started yet end at once
                raise
            finally:
                ahead.close()
                for f in pending:
                    f.cancel()
                pool.shutdown(wait=True)
                small_pool.shutdown(wait=True)
                self._remove_unfinished()
        if self._archived is not None:
            raise self._archived
        self._finish(links, dirs, files)

    # ------------------------------------------------------------------ the calling thread
    def _start_window(self, window: Window, files: list[Entry]) -> None:
        done: Outcome = []
        for f in window.files:
            f.state = _Open(f.left, f.error)
            if self.options.verify:
                files.append(f.entry)
            if f.left == 0:
                done.append((f.entry, self._complete(f)))
        self._report(done)

    def _first(self, pr: PackRead) -> None:
        if self.before_reading is not None:
            check, self.before_reading = self.before_reading, None
            check(pr.read)

    def _remove_unfinished(self) -> None:
        """Files a stopped or failed restore did not complete: removed."""
        for f in list(self._started):
            st: _Open = f.state
            with st.lock:
                if st.fd >= 0:
                    os.close(st.fd)
                    st.fd = -1
            self._unlink(f)
        self._started.clear()

    # ------------------------------------------------------------------ the threads
    def _read(self, pr: PackRead) -> Outcome:
        out: Outcome = []
        if self._stop.is_set():
            return out
        reader = self.repo.reader
        pack, start, length = pr.read
        span = None
        archived: ObjectArchived | None = None  # every blob of the pack would answer the same
        try:
            span = reader.read_range(pack, start, length)
            if len(span) < length:
                span = None  # a truncated pack: each blob's own read says which
        except ObjectArchived as e:
            self._archived_read(e)
            if self.stop_when_archived:
                return out
            archived = e
        except (OSError, CairnError):
            pass
        for n in pr.blobs:
            data = None
            error: BaseException | None = archived
            x = n.at
            ref = BlobRef(n.blob_id, x.offset, x.length, x.raw_length)
            if archived is None:
                sealed = None  # read alone: the request failed or was short
                if span is not None:
                    sealed = span[x.offset - start : x.offset - start + x.length]
                try:
                    data = reader.open_view(pack, ref, sealed)
                except ObjectArchived as e:
                    self._archived_read(e)
                    error = e
                except (OSError, CairnError) as e:
                    error = e
            for f, offset in n.places:
                done = self._put(f, offset, data, error)
                if done:
                    out.append((f.entry, self._complete(f)))
        return out

    def _put(
        self, f: FileJob, offset: int, data: bytes | memoryview | None, error: BaseException | None
    ) -> bool:
        """One blob place of a file written (or failed); True when it was the file's last."""
        st: _Open = f.state
        n = 0
        with st.lock:
            if error is not None:
                if st.error is None:
                    st.error = error
            elif st.error is None and data is not None:
                n = len(data)
                st.shown += n
                try:
                    k, end = write_data(self._fd(f, st), data, offset)
                    st.written += k
                    st.end = max(st.end, end)
                except OSError as e:
                    st.error = e
            st.left -= 1
            last = st.left == 0
        if n:
            self.tally.progress.bytes_done(n)
        return last

    def _fd(self, f: FileJob, st: _Open) -> int:
        """The file open for writing (its lock held): created at its first blob, opened again
        if it was closed to keep the number of open files down."""
        if st.fd < 0:
            if f in self._started:
                st.fd = self.writer.reopen(f.entry)
            else:
                st.fd = self.writer.create(f.entry, reopenable=True)
                with self._started_lock:
                    self._started[f] = None
            self._opened(f)
        else:
            with self._lru_lock:
                if f in self._lru:
                    self._lru.move_to_end(f)
        return st.fd

    def _opened(self, f: FileJob) -> None:
        """Counts an open file; closes the least recently written ones over ``open_files``
        (not one another thread is writing: its lock is only tried)."""
        with self._lru_lock:
            self._lru[f] = None
            if len(self._lru) <= self.open_files:
                return
            for other in list(self._lru):
                if len(self._lru) <= self.open_files:
                    break
                if other is f:
                    continue
                ost: _Open = other.state
                if not ost.lock.acquire(blocking=False):
                    continue
                try:
                    if ost.fd >= 0:
                        os.close(ost.fd)
                        ost.fd = -1
                    del self._lru[other]
                finally:
                    ost.lock.release()

    def _complete(self, f: FileJob) -> BaseException | None:
        """Ends a file whose blob places are all written (or failed): its size and metadata."""
        st: _Open = f.state
        with self._lru_lock:
            self._lru.pop(f, None)
        with st.lock:
            error = st.error
            fd = st.fd
            st.fd = -1
            if fd < 0 and error is None:
                try:
                    if f in self._started:
                        fd = self.writer.reopen(f.entry)
                    else:
                        fd = self.writer.create(f.entry, reopenable=True)
                except OSError as e:
                    error = e
            with self._started_lock:
                self._started.pop(f, None)
            if fd < 0:
                self._unlink(f)
                return error
            outcome = self.writer.complete(f.entry, fd, st.written, st.end, error, reopenable=True)
        holes = f.entry.node.size - st.shown  # the blob of zeros is not read: nothing told
        if outcome is None and holes > 0:
            self.tally.progress.bytes_done(holes)
        return outcome

    def _unlink(self, f: FileJob) -> None:
        try:
            self.writer.remove(f.entry)
        except OSError:
            pass


class _Ahead:
    """The schedule's jobs, made on a thread of its own at most one window ahead of the one
    who takes them: handed over a window at a time (with the directories and links before
    it), or ``AHEAD_JOBS`` jobs when no window comes. What the schedule raises is raised to
    the taker where it happened, after the jobs made before it. ``close`` stops the thread
    (the schedule is closed on it, so the walk's own threads end) and waits for it."""

    def __init__(self, jobs: Iterator[Job]) -> None:
        self._jobs = jobs
        self._cond = threading.Condition()
        self._ready: deque[list[Job]] = deque()  # at most one batch waits
        self._done = False  # the schedule ended
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cairn-restore-plan", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[Job]:
        while True:
            with self._cond:
                while not self._ready and not self._done:
                    self._cond.wait()
                if self._ready:
                    batch = self._ready.popleft()
                    self._cond.notify_all()
                else:
                    if self._error is not None:
                        raise self._error
                    return
            yield from batch

    def _run(self) -> None:
        jobs = self._jobs
        batch: list[Job] = []
        try:
            for job in jobs:
                if self._closed:
                    return
                batch.append(job)
                if isinstance(job, Window) or len(batch) >= AHEAD_JOBS:
                    if not self._hand(batch):
                        return
                    batch = []
            if batch:
                self._hand(batch)
        except BaseException as e:
            if batch:
                self._hand(batch)
            with self._cond:
                self._error = e
        finally:
            close = getattr(jobs, "close", None)
            if close is not None:
                close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _hand(self, batch: list[Job]) -> bool:
        """Waits until the batch before is taken; False if the taker is gone."""
        with self._cond:
            while self._ready and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._ready.append(batch)
            self._cond.notify_all()
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._ready.clear()
            self._cond.notify_all()
        self._thread.join()
