"""Running a restore: the schedule's jobs on threads, into the target.

The calling thread takes the jobs as the schedule makes them (so trees are read as the work
goes), creates directories and special files itself, and hands files to threads: batches of
small files to threads of their own if there are (``small_file_workers``; a small file is
mostly Python work and system calls, and two threads on them mostly hand each other the GIL),
else to the workers, and the parts of a large file to the workers. At most twice as many jobs
as threads are in flight, so memory stays flat. Once every file is written, the later paths of
hardlinks are linked, and directories get their metadata, deepest first, the target last when
it stands for a directory of the snapshot (``root``: restoring ``SNAP:/dir`` puts the contents
of /dir in the target); then, if asked, the files are read back and compared.

A read that answers that a pack is archived stops the restore when ``stop_when_archived``: no
further file is started, a file whose data could not all be read is removed (files written
completely stay), nothing is linked and no directory gets its metadata, and the
``ObjectArchived`` is raised once the threads are done. The caller has the packs restored and
runs the restore again (a restore overwrites what it finds). ``before_reading`` sees the first
read before it is made, and may stop the restore the same way (by raising), before any file is
written.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from cairn.core.errors import CairnError, IntegrityError, ObjectArchived
from cairn.model.node import DIR
from cairn.ops.filter_patterns import PatternList
from cairn.ops.restore.packorder import WINDOW_PLACES
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.schedule import Batch, Fetch, LargeFile, Link, Part, Read, schedule
from cairn.ops.restore.source import BlobSource
from cairn.ops.restore.tally import Tally
from cairn.ops.restore.verify import verify
from cairn.ops.restore.writer import FileWriter
from cairn.ops.restore.zeros import ZeroBlob
from cairn.repo.ranges import LOCAL_GAP
from cairn.repo.repository import Repository


@dataclass
class RestoreOptions:
    include: PatternList = field(default_factory=lambda: PatternList([]))
    exclude: PatternList = field(default_factory=lambda: PatternList([]))
    verify: bool = False
    # threads writing large files' parts (and small files, unless they have threads of their own)
    workers: int = 2
    # threads of their own for batches of small files (None: the workers write those too)
    small_file_workers: int | None = None
    # read each pack once for the files of a window (``packorder``), rather than file by file
    pack_order: bool = False
    read_gap: int = LOCAL_GAP  # pack order: a gap between needed blobs this small is read through
    # pack order: the blob places a window plans at most (its memory: about 200 bytes each)
    window_places: int = WINDOW_PLACES


class Stopped(CairnError):
    """The restore stopped before this file was written."""


Outcome = list[tuple[Entry, BaseException | None]]  # files a job ended, each with its problem


class _Parts:
    """A large file written in parts by several threads at once; whichever thread finishes
    the last part completes the file (or removes it, if a part failed)."""

    def __init__(self, entry: Entry, fd: int, count: int) -> None:
        self.entry = entry
        self.fd = fd
        self.left = count
        self.written = 0
        self.end = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        # ext4 serialises writes to one file on its inode lock, which waiting writers spin on
        # (burning the other core); a Python lock lets them sleep instead
        self.write_lock = threading.Lock()

    def part_done(self, written: int, end: int, error: BaseException | None) -> bool:
        """Records a finished part; True for the last one."""
        with self._lock:
            self.written += written
            self.end = max(self.end, end)
            if self.error is None:
                self.error = error
            self.left -= 1
            return self.left == 0


class Executor:
    def __init__(
        self,
        repo: Repository,
        options: RestoreOptions,
        tally: Tally,
        writer: FileWriter,
        *,
        stop_when_archived: bool = False,
        before_reading: Callable[[Read], None] | None = None,
        root: Entry | None = None,
    ) -> None:
        self.repo = repo
        self.root = root
        self.options = options
        self.tally = tally
        self.writer = writer
        self.source = BlobSource(repo.reader)
        self.zero = ZeroBlob(repo.config.chunker, repo.blob_id)
        self.stop_when_archived = stop_when_archived
        self.before_reading = before_reading
        self._stop = threading.Event()
        self._archived: ObjectArchived | None = None

    def run(self, entries: Iterable[Entry]) -> None:
        links: list[Link] = []
        dirs: list[Entry] = []
        files: list[Entry] = []  # kept only to verify them: otherwise memory would grow
        pending: deque[Future[Outcome]] = deque()
        workers = self.options.workers
        small = self.options.small_file_workers
        with contextlib.ExitStack() as stack:
            pool = stack.enter_context(
                ThreadPoolExecutor(workers, thread_name_prefix="cairn-restore")
            )
            small_pool = pool
            if small is not None:
                small_pool = stack.enter_context(
                    ThreadPoolExecutor(small, thread_name_prefix="cairn-restore-small")
                )
            window = 2 * (workers + (small or 0))

            def submit(to: ThreadPoolExecutor, fn: Callable[..., Outcome], *args: object) -> None:
                pending.append(to.submit(fn, *args))
                while len(pending) > window:
                    self._collect(pending.popleft())

            try:
                for job in schedule(entries, self.repo.index.get, self.source, self.zero):
                    if self._stop.is_set():
                        self._abandon(job)
                        break
                    if isinstance(job, Batch):
                        self._first_read(job)
                        if self.options.verify:
                            files.extend(job.entries)
                        submit(small_pool, self._restore_batch, job)
                    elif isinstance(job, LargeFile):
                        self._first_read(job)
                        if self.options.verify:
                            files.append(job.entry)
                        self._start_large(job, pool, submit)
                    elif isinstance(job, Link):
                        links.append(job)
                    else:
                        self._make(job, dirs)
                while pending:
                    self._collect(pending.popleft())
            except BaseException:
                self._stop.set()  # the jobs not started yet end at once
                raise
        if self._archived is not None:
            raise self._archived
        self._finish(links, dirs, files)

    # ------------------------------------------------------------------ the calling thread
    def _make(self, entry: Entry, dirs: list[Entry]) -> None:
        """A directory or a special file, at once."""
        try:
            if entry.node.type == DIR:
                self.writer.make_dir(entry)
                dirs.append(entry)
            else:
                self.writer.make_special(entry)
        except OSError as e:
            self.tally.error(b"/".join(entry.parts), e.strerror or str(e))

    def _start_large(
        self,
        job: LargeFile,
        pool: ThreadPoolExecutor,
        submit: Callable[..., None],
    ) -> None:
        try:
            fd = self.writer.create(job.entry)
        except OSError as e:
            self._abandon(job)
            self.tally.error(b"/".join(job.entry.parts), e.strerror or str(e))
            return
        parts = _Parts(job.entry, fd, len(job.parts))
        for part in job.parts:
            submit(pool, self._write_part, parts, part)

    def _first_read(self, job: Batch | LargeFile) -> None:
        """Shows ``before_reading`` the first read of the restore, before it is made."""
        if self.before_reading is None:
            return
        first = next(job.requests(), None)
        if first is not None:
            check, self.before_reading = self.before_reading, None
            try:
                check(first)
            except BaseException:
                self._abandon(job)
                raise

    def _collect(self, future: Future[Outcome]) -> None:
        self._report(future.result())

    def _report(self, outcome: Outcome) -> None:
        for entry, problem in outcome:
            if problem is None or isinstance(problem, Stopped):
                continue
            if isinstance(problem, ObjectArchived) and self.stop_when_archived:
                continue
            self.tally.error(b"/".join(entry.parts), _message(problem))

    def _finish(self, links: list[Link], dirs: list[Entry], files: list[Entry]) -> None:
        linked: list[Link] = []
        for link in links:
            try:
                self.writer.link(link.entry, link.first)
            except OSError as e:
                self.tally.error(b"/".join(link.entry.parts), e.strerror or str(e))
            else:
                if self.options.verify:
                    linked.append(link)
        if self.root is not None:
            dirs = [self.root, *dirs]
        for entry in reversed(dirs):
            try:
                self.writer.finish_dir(entry)
            except OSError as e:
                self.tally.error(b"/".join(entry.parts), e.strerror or str(e))
        if self.options.verify:
            repo = self.repo
            target = self.writer.target
            verify(target, files, repo.config.chunker, repo.blob_id, self.tally, linked)

    def _abandon(self, job: object) -> None:
        """A job that will not run: whoever takes a blob it was to keep reads it alone."""
        if isinstance(job, Batch):
            for fetches in job.fetches:
                self.source.abandon(fetches)
        elif isinstance(job, LargeFile):
            for part in job.parts:
                self.source.abandon(part.fetches)

    # ------------------------------------------------------------------ the threads
    def _archived_read(self, e: BaseException) -> None:
        if isinstance(e, ObjectArchived) and self.stop_when_archived:
            if self._archived is None:
                self._archived = e
            self._stop.set()

    def _restore_batch(self, job: Batch) -> Outcome:
        """Files of one directory, in a row on one thread: threads creating files in the same
        directory would only wait for each other's hold on it."""
        out: Outcome = []
        loaded: dict[bytes, bytes] = {}
        if job.spans and not self._stop.is_set():
            try:
                loaded = self.source.spans(job.spans)
            except ObjectArchived as e:
                self._archived_read(e)  # otherwise each file reads its blobs alone, and fails
        for entry, fetches in zip(job.entries, job.fetches, strict=True):
            if self._stop.is_set():
                self.source.abandon(fetches)
                out.append((entry, Stopped("not restored: the restore stopped")))
                continue
            try:
                out.append((entry, self._restore_file(entry, fetches, job.shared, loaded)))
            except (OSError, CairnError) as e:
                out.append((entry, e))
        return out

    def _restore_file(
        self,
        entry: Entry,
        fetches: list[Fetch],
        shared: frozenset[bytes],
        loaded: dict[bytes, bytes],
    ) -> BaseException | None:
        node = entry.node
        try:
            fd = self.writer.create(entry)
        except BaseException:
            self.source.abandon(fetches)
            raise
        written = end = 0
        error: BaseException | None = None
        blobs = self.source.blobs(node.content, fetches, shared, loaded)
        try:
            written, end, size = self.writer.write(fd, blobs, 0)
            if size != node.size:
                raise IntegrityError(
                    "file", f"content is {size} bytes, the snapshot says {node.size}"
                )
        except BaseException as e:
            error = e
            self._archived_read(e)
        finally:
            blobs.close()
            self.source.abandon(fetches)
        return self.writer.complete(entry, fd, written, end, error)

    def _write_part(self, job: _Parts, part: Part) -> Outcome:
        written = end = 0
        error: BaseException | None = None
        if self._stop.is_set():
            error = Stopped("not restored: the restore stopped")
        else:
            blobs = self.source.fetched(part.fetches)
            try:
                written, end, _ = self.writer.write(job.fd, blobs, part.offset, job.write_lock)
            except BaseException as e:
                error = e
                self._archived_read(e)
            finally:
                blobs.close()
        self.source.abandon(part.fetches)
        if not job.part_done(written, end, error):
            return []
        problem = self.writer.complete(job.entry, job.fd, job.written, job.end, job.error)
        return [(job.entry, problem)]


def _message(e: BaseException) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)
