"""Restoring a snapshot (or a part of it) into a target directory.

The tree is walked once, as the work goes (files are written while later trees are read);
directories, links and special files are created on the calling thread, files are written by a
pool of workers (the files of one directory in batches on one thread, since threads creating
files in one directory wait for each other's hold on it; a large file in parts on several;
batches of small files, optionally, on threads of their own; each file created with its final
mode where the umask allows it), hardlinks are made once their first path exists, and directory
metadata is applied last, deepest first, so that writing into a directory does not disturb its
restored times and read-only directories can be filled. Blobs are authenticated before a byte
is written; a file whose data fails is removed and named. All-zero chunks become holes, so
sparse files stay sparse.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cairn.core.errors import CairnError, IntegrityError, UsageError
from cairn.model.chunker import Chunker
from cairn.model.node import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.excludes import PathMatcher
from cairn.ops.fsapply import (
    apply_by_name,
    apply_to_fd,
    creation_mode,
    owned_from_creation,
    process_umask,
)
from cairn.ops.progress import Progress
from cairn.ops.safefs import Target
from cairn.ops.snapshots import find_node, split_path
from cairn.ops.treewalk import TreeProblem, read_listing
from cairn.repo.index import IndexEntry, PackInfo
from cairn.repo.layout import DATA_BLOB
from cairn.repo.pack import BlobRef
from cairn.repo.repository import Repository

_ZEROS = memoryview(bytes(1 << 20))
BATCH_FILES = 64  # files of one directory restored in a row by one thread
BATCH_BYTES = 4 << 20
PART_BYTES = 8 << 20  # a larger file is written in parts of about this size, by several threads
RUN_BYTES = 4 << 20  # blobs stored back to back are read together, up to this many bytes
T = TypeVar("T")
_Run = list[tuple[bytes, "IndexEntry | None"]]


@dataclass(frozen=True)
class DataRead:
    """One ranged read of a pack that a restore makes."""

    pack: PackInfo
    offset: int
    length: int


class _Batcher:
    """Groups files to restore: consecutive files of one directory, up to ``BATCH_FILES`` files
    and ``BATCH_BYTES`` bytes; a file that does not fit starts the next batch."""

    def __init__(self) -> None:
        self.batch: list[_Entry] = []
        self.size = 0

    def add(self, entry: _Entry) -> list[_Entry] | None:
        """Adds a file; returns the batch it closed, if any."""
        done = None
        b = self.batch
        if b and (
            b[-1].parts[:-1] != entry.parts[:-1]
            or len(b) >= BATCH_FILES
            or self.size + entry.node.size > BATCH_BYTES
        ):
            done = self.flush()
        self.batch.append(entry)
        self.size += entry.node.size
        return done

    def flush(self) -> list[_Entry]:
        done, self.batch, self.size = self.batch, [], 0
        return done


@dataclass
class RestoreOptions:
    include: PathMatcher = field(default_factory=lambda: PathMatcher([]))
    exclude: PathMatcher = field(default_factory=lambda: PathMatcher([]))
    verify: bool = False
    # threads writing large files' parts (and small files, unless they have threads of their own)
    workers: int = 2
    # threads of their own for batches of small files (None: the workers write those too). A
    # small file is mostly Python work and system calls, each of which hands the GIL to another
    # thread: two threads on small files mostly wait for each other.
    small_file_workers: int | None = None


@dataclass
class RestoreSummary:
    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes_written: int = 0
    errors: int = 0
    verified: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Entry:
    parts: tuple[bytes, ...]  # path below the target
    node: Node


@dataclass
class _Frame:
    """A directory being planned (see ``Restorer._plan_dir``)."""

    nodes: Iterator[Node]
    path: bytes
    parts: tuple[bytes, ...]
    included: bool  # an ancestor (or the directory itself) is included
    depth: int
    entry: _Entry | None  # the directory, when it is held for what is below it
    held: list[_Entry] | None  # its entries then, until something below is found selected
    out: list[_Entry] | None  # where entries found here go: None to the plan itself
    found: bool = False  # something here was selected


class _Parts:
    """A large file written in parts by several threads at once; whichever thread finishes
    the last part completes the file (or removes it, if a part failed)."""

    def __init__(self, entry: _Entry, fd: int, count: int) -> None:
        self.entry = entry
        self.fd = fd
        self.left = count
        self.written = 0
        self.end = 0
        self.error: OSError | CairnError | None = None
        self._lock = threading.Lock()
        # ext4 serialises writes to one file on its inode lock, which waiting writers spin on
        # (burning the other core); a Python lock lets them sleep instead
        self.write_lock = threading.Lock()

    def part_done(self, written: int, end: int, error: OSError | CairnError | None) -> bool:
        """Records a finished part; True for the last one."""
        with self._lock:
            self.written += written
            self.end = max(self.end, end)
            if self.error is None:
                self.error = error
            self.left -= 1
            return self.left == 0


class _BlobCache(Generic[T]):
    """A small LRU of recently loaded blobs, so duplicates are read once. ``size`` measures a
    loaded value (the blob's bytes; or only its length, to count a restore's reads); ``keep``
    makes the copy that is cached (of a value only valid for a while)."""

    def __init__(
        self,
        load: Callable[[bytes], T],
        size: Callable[[T], int],
        max_bytes: int = 8 << 20,
        keep: Callable[[T], T] = lambda value: value,
    ) -> None:
        self._load = load
        self._keep = keep
        self._sizeof = size
        self._max = max_bytes
        self._size = 0
        self._items: OrderedDict[bytes, T] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, blob_id: bytes) -> T:
        with self._lock:
            data = self._items.get(blob_id)
            if data is not None:
                self._items.move_to_end(blob_id)
                return data
        data = self._load(blob_id)
        with self._lock:
            n = self._sizeof(data)
            if blob_id not in self._items and n <= self._max // 8:
                data = self._items[blob_id] = self._keep(data)
                self._size += n
                while self._size > self._max:
                    _, old = self._items.popitem(last=False)
                    self._size -= self._sizeof(old)
        return data


def is_zero(data: bytes | memoryview) -> bool:
    if data[:1] != b"\0":
        return False
    view = memoryview(data)
    step = len(_ZEROS)
    return all(
        view[i : i + step] == _ZEROS[: len(view[i : i + step])] for i in range(0, len(view), step)
    )


class Restorer:
    def __init__(self, repo: Repository, progress: Progress, options: RestoreOptions) -> None:
        self.repo = repo
        self.progress = progress
        self.options = options
        self.summary = RestoreSummary()
        # a blob too large to cache is read and decrypted into reused buffers, not copied
        self._blobs: _BlobCache[bytes | memoryview] = _BlobCache(
            lambda b: repo.load_blob_view(b, DATA_BLOB), len, keep=bytes
        )
        self._lock = threading.Lock()
        self._umask = process_umask()

    # ------------------------------------------------------------------ planning
    def run(self, snap: Snapshot, subpath: str, target_path: str) -> RestoreSummary:
        return self.execute(self.plan_stream(snap, subpath), target_path)

    def plan(self, snap: Snapshot, subpath: str) -> list[_Entry]:
        """Every entry to restore, in order; reads the trees, no file data."""
        return list(self.plan_stream(snap, subpath))

    def plan_stream(self, snap: Snapshot, subpath: str) -> Iterator[_Entry]:
        """``plan``, walking the trees as the entries are taken, so that a restore starts
        writing files before the last tree is read. The subpath is looked up at once (a wrong
        one fails before anything is restored)."""
        top = find_node(self.repo, snap, subpath)
        parts = split_path(subpath)
        base = b"/" + b"/".join(parts)
        base = base.rstrip(b"/") if base != b"/" else b""
        if top.type == DIR:
            if top.subtree is None:
                return iter(())
            return self._plan_dir(top.subtree, base, len(parts) + 1)
        return iter([_Entry((top.name,), top)] if self._selected(base, False) is True else [])

    def data_reads(self, plan: list[_Entry]) -> list[DataRead]:
        """The reads of pack data that restoring ``plan`` makes, one ranged GET each, in order:
        a batch's shared ranges, then each blob not in them nor in the blob cache; the later
        paths of a hardlink read nothing (counted as if batches ran one at a time, and nothing
        failed). For estimates."""
        reads: list[DataRead] = []

        def load(blob_id: bytes) -> int:
            entry = self.repo.index.get(blob_id)
            if entry is None:
                return 0
            reads.append(DataRead(entry.pack, entry.offset, entry.length))
            return entry.raw_length

        cache = _BlobCache(load, int)

        def read_runs(blob_ids: list[bytes]) -> None:
            for run in self._runs(blob_ids):
                if len(run) > 1:
                    reads.append(_run_read(run))
                else:
                    cache.get(run[0][0])

        def consume(batch: list[_Entry]) -> None:
            shared: set[bytes] = set()
            for pack, start, end, blobs in self._spans(batch):
                reads.append(DataRead(pack, start, end - start))
                shared.update(blob_id for blob_id, _ in blobs)
            for e in batch:
                read_runs([b for b in e.node.content if b not in shared])

        batcher = _Batcher()
        links: set[tuple[int, int]] = set()
        for entry in plan:
            node = entry.node
            if node.type != FILE:
                continue
            if node.links > 1 and node.inode:
                if (node.dev, node.inode) in links:
                    continue
                links.add((node.dev, node.inode))
            parts = self._split(node)
            if parts:
                consume(batcher.flush())
                for first, stop, _ in parts:
                    read_runs(node.content[first:stop])
                continue
            done = batcher.add(entry)
            if done:
                consume(done)
        consume(batcher.flush())
        return reads

    def execute(self, plan: Iterable[_Entry], target_path: str) -> RestoreSummary:
        try:
            target = Target(target_path)
        except FileExistsError:
            raise UsageError(f"cannot restore into {target_path}: not a directory") from None
        except OSError as e:
            raise UsageError(f"cannot restore into {target_path}: {e.strerror}") from None
        try:
            self._execute(target, plan)
        finally:
            target.close()
        return self.summary

    def _selected(self, path: bytes, ancestor_included: bool) -> bool | None:
        """True: restore; False: skip with everything below; None: only what is below."""
        if self.options.exclude.matches(path):
            return False
        if not self.options.include or ancestor_included or self.options.include.matches(path):
            return True
        return None

    def _plan_dir(self, tree_id: bytes, path: bytes, depth: int) -> Iterator[_Entry]:
        """The entries below a tree, depth first, parents before children; iterative, so a
        tree of any depth costs no stack. A directory that is neither included nor excluded
        itself is restored only if something below it is: its entries are held until that is
        known. Entries a tree leaves out (invalid, a name repeated) are reported as errors."""
        root = self._frame(tree_id, path, (), False, depth, None, None)
        if root is None:
            return
        stack = [root]
        while stack:
            f = stack[-1]
            node = next(f.nodes, None)
            if node is None:
                stack.pop()
                if f.held is not None and f.found and f.entry is not None:
                    # a directory held for what is below it: something was, so it is restored
                    parent = stack[-1]
                    parent.found = True
                    if parent.out is None:
                        yield f.entry
                        yield from f.held
                    else:
                        parent.out.append(f.entry)
                        parent.out.extend(f.held)
                continue
            child_path = f.path + b"/" + node.name
            sel = self._selected(child_path, f.included)
            if sel is False:
                continue
            entry = _Entry((*f.parts, node.name), node)
            if node.type == DIR:
                if sel is None:
                    if node.subtree is not None:
                        held: list[_Entry] = []
                        sub = self._frame(
                            node.subtree, child_path, entry.parts, f.included, f.depth + 1, entry,
                            held,
                        )  # fmt: skip
                        if sub is not None:
                            stack.append(sub)
                    continue
                if node.subtree is not None:
                    sub = self._frame(
                        node.subtree, child_path, entry.parts, True, f.depth + 1, None, None
                    )
                    if sub is not None:
                        sub.out = f.out
                        stack.append(sub)
            elif sel is None:
                continue
            f.found = True
            if f.out is None:
                yield entry
            else:
                f.out.append(entry)

    def _frame(
        self,
        tree_id: bytes,
        path: bytes,
        parts: tuple[bytes, ...],
        included: bool,
        depth: int,
        entry: _Entry | None,
        held: list[_Entry] | None,
    ) -> _Frame | None:
        """A directory to plan, its listing read; None if it cannot be read (reported)."""
        nodes = read_listing(self.repo, tree_id, path, depth, self._tree_problem)
        if nodes is None:
            return None
        return _Frame(iter(nodes), path, parts, included, depth, entry, held, held)

    def _tree_problem(self, problem: TreeProblem) -> None:
        self._error(problem.path or b"/", problem.describe())

    # ------------------------------------------------------------------ execution
    def _execute(self, target: Target, plan: Iterable[_Entry]) -> None:
        links: dict[tuple[int, int], tuple[bytes, ...]] = {}
        later_links: list[tuple[_Entry, tuple[bytes, ...]]] = []
        dirs: list[_Entry] = []
        files: list[_Entry] = []  # kept only to verify them: otherwise memory would grow
        batcher = _Batcher()
        pending: deque[Future[_Outcome]] = deque()
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

            def submit(to: ThreadPoolExecutor, fn: Callable[..., _Outcome], *args: object) -> None:
                # a bounded window of tasks in flight keeps memory flat
                pending.append(to.submit(fn, *args))
                while len(pending) > window:
                    self._collect(pending.popleft())

            def submit_batch(batch: list[_Entry] | None) -> None:
                if batch:
                    submit(small_pool, self._restore_files, target, batch)

            for entry in plan:
                node = entry.node
                if node.type == FILE and node.links > 1 and node.inode:
                    key = (node.dev, node.inode)
                    if key in links:
                        later_links.append((entry, links[key]))
                        continue
                    links[key] = entry.parts
                try:
                    if node.type == DIR:
                        self._make_dir(target, entry)
                        dirs.append(entry)
                    elif node.type == FILE:
                        if self.options.verify:
                            files.append(entry)
                        parts = self._split(node)
                        if parts:
                            submit_batch(batcher.flush())
                            job = _Parts(entry, self._create(target, entry), len(parts))
                            for part in parts:
                                submit(pool, self._write_part, target, job, *part)
                        else:
                            submit_batch(batcher.add(entry))
                    else:
                        self._make_special(target, entry)
                except OSError as e:
                    self._error(b"/".join(entry.parts), e.strerror or str(e))
            submit_batch(batcher.flush())
            while pending:
                self._collect(pending.popleft())
        for entry, first in later_links:
            try:
                self._link(target, entry, first)
            except OSError as e:
                self._error(b"/".join(entry.parts), e.strerror or str(e))
        for entry in reversed(dirs):
            try:
                fd = target.dir_fd(entry.parts)
                for problem in apply_to_fd(fd, entry.node):
                    self._error(b"/".join(entry.parts), problem)
            except OSError as e:
                self._error(b"/".join(entry.parts), e.strerror or str(e))
        if self.options.verify:
            self._verify(target, files)

    def _collect(self, future: Future[_Outcome]) -> None:
        for entry, problem in future.result():
            if problem is not None:
                self._error(b"/".join(entry.parts), _message(problem))

    def _restore_files(self, target: Target, entries: list[_Entry]) -> _Outcome:
        """Files of one directory, in a row on one thread: threads creating files in the same
        directory would only wait for each other's hold on it."""
        loaded = self._prefetch(entries)
        out: _Outcome = []
        for entry in entries:
            try:
                out.append((entry, self._restore_file(target, entry, loaded)))
            except (OSError, CairnError) as e:
                out.append((entry, e))
        return out

    def _split(self, node: Node) -> list[tuple[int, int, int]] | None:
        """The parts a large file is written in, by several threads: (first blob, end blob,
        offset in the file). None for a file written whole: one of at most ``PART_BYTES``, or
        one whose blobs the index lacks (it fails with its own error)."""
        if node.size <= PART_BYTES:
            return None
        parts: list[tuple[int, int, int]] = []
        first = start = offset = 0
        last = len(node.content) - 1
        for i, blob_id in enumerate(node.content):
            found = self.repo.index.get(blob_id)
            if found is None:
                return None
            offset += found.raw_length
            if offset - start >= PART_BYTES or i == last:
                parts.append((first, i + 1, start))
                first, start = i + 1, offset
        return parts if len(parts) > 1 and offset == node.size else None

    def _write_part(
        self, target: Target, job: _Parts, first: int, stop: int, offset: int
    ) -> _Outcome:
        written = end = 0
        error: BaseException | None = None
        try:
            written, end, _ = self._write_blobs(
                job.fd, job.entry.node.content[first:stop], offset, None, job.write_lock
            )
        except BaseException as e:
            error = e
        if not job.part_done(written, end, error):
            return []
        problem = self._complete(target, job.entry, job.fd, job.written, job.end, job.error)
        return [(job.entry, problem)]

    def _runs(self, blob_ids: list[bytes]) -> list[_Run]:
        """``blob_ids`` in order, grouped in runs stored back to back in one pack (up to
        ``RUN_BYTES``), each read with one request; a blob the index lacks is a run alone."""
        runs: list[_Run] = []
        prev: IndexEntry | None = None
        for blob_id in blob_ids:
            found = self.repo.index.get(blob_id)
            if (
                found is not None
                and prev is not None
                and found.pack.id == prev.pack.id
                and found.offset == prev.offset + prev.length
                and found.offset + found.length - runs[-1][0][1].offset <= RUN_BYTES  # type: ignore[union-attr]
            ):
                runs[-1].append((blob_id, found))
            else:
                runs.append([(blob_id, found)])
            prev = found
        return runs

    def _read_runs(self, blob_ids: list[bytes]) -> Iterator[bytes | memoryview]:
        """The blobs' contents in order, read run by run (see ``_runs``); each is valid until
        the next is taken. A run that fails is read again blob by blob, so the error names the
        blob."""
        for run in self._runs(blob_ids):
            if len(run) == 1:
                yield self._blobs.get(run[0][0])
                continue
            r = _run_read(run)
            span: memoryview | None = None
            with contextlib.suppress(OSError, CairnError):
                span = self.repo.read_range(r.pack, r.offset, r.length)
            for blob_id, x in run:
                data = None
                if span is not None and x is not None:
                    ref = BlobRef(blob_id, x.offset, x.length, x.raw_length)
                    at = x.offset - r.offset
                    with contextlib.suppress(OSError, CairnError):
                        data = self.repo.load_blob_view_at(x.pack, ref, span[at : at + x.length])
                # not through the read buffer, which holds the rest of the run
                yield data if data is not None else self.repo.load_blob(blob_id, DATA_BLOB)

    def _spans(
        self, entries: list[_Entry]
    ) -> list[tuple[PackInfo, int, int, list[tuple[bytes, IndexEntry]]]]:
        """For a batch of small files, the pack ranges read in one request each: (pack, start,
        end, the blobs in it). Files of one directory were stored together, so one range per
        pack covers them; a range that would be mostly other data is not read this way."""
        if sum(e.node.size for e in entries) > BATCH_BYTES or len(entries) < 2:
            return []
        by_pack: dict[bytes, list[tuple[bytes, IndexEntry]]] = {}
        seen: set[bytes] = set()
        for e in entries:
            for blob_id in e.node.content:
                if blob_id in seen:
                    continue
                seen.add(blob_id)
                found = self.repo.index.get(blob_id)
                if found is not None:
                    by_pack.setdefault(found.pack.id, []).append((blob_id, found))
        spans = []
        for blobs in by_pack.values():
            if len(blobs) < 2:
                continue
            blobs.sort(key=lambda b: b[1].offset)
            start = blobs[0][1].offset
            end = max(x.offset + x.length for _, x in blobs)
            if end - start <= 2 * sum(x.length for _, x in blobs) + (64 << 10):
                spans.append((blobs[0][1].pack, start, end, blobs))
        return spans

    def _prefetch(self, entries: list[_Entry]) -> dict[bytes, bytes]:
        """The blobs of a batch's shared ranges. A range or blob that fails here is read again
        blob by blob, so an error is reported with the file it belongs to."""
        loaded: dict[bytes, bytes] = {}
        for pack, start, end, blobs in self._spans(entries):
            try:
                span = self.repo.read_range(pack, start, end - start)
            except (OSError, CairnError):
                continue
            for blob_id, x in blobs:
                ref = BlobRef(blob_id, x.offset, x.length, x.raw_length)
                sealed = span[x.offset - start : x.offset - start + x.length]
                with contextlib.suppress(OSError, CairnError):
                    loaded[blob_id] = self.repo.load_blob_at(pack, ref, sealed)
        return loaded

    def _make_dir(self, target: Target, entry: _Entry) -> None:
        target.make_dir(target.dir_fd(entry.parts[:-1]), entry.parts[-1])
        self.summary.dirs += 1

    def _make_special(self, target: Target, entry: _Entry) -> None:
        node, name = entry.node, entry.parts[-1]
        if node.type == SOCKET:
            return  # a socket belongs to a running program; there is nothing to restore
        pfd = target.dir_fd(entry.parts[:-1])
        target.clear(pfd, name)
        if node.type == SYMLINK:
            os.symlink(node.target or b"", name, dir_fd=pfd)
        elif node.type == FIFO:
            os.mkfifo(name, 0o600, dir_fd=pfd)
        elif node.type in (CHARDEV, BLOCKDEV):
            kind = 0o020000 if node.type == CHARDEV else 0o060000
            os.mknod(name, kind | 0o600, node.rdev, dir_fd=pfd)
        for problem in apply_by_name(pfd, name, node):
            self._error(b"/".join(entry.parts), problem)
        self.summary.others += 1
        self.progress.item_done(b"/".join(entry.parts), 0)

    def _restore_file(
        self, target: Target, entry: _Entry, loaded: dict[bytes, bytes]
    ) -> BaseException | None:
        node = entry.node
        fd = self._create(target, entry)
        written = end = 0
        error: BaseException | None = None
        try:
            written, end, size = self._write_blobs(fd, node.content, 0, loaded)
            if size != node.size:
                raise IntegrityError(
                    "file", f"content is {size} bytes, the snapshot says {node.size}"
                )
        except BaseException as e:
            error = e
        return self._complete(target, entry, fd, written, end, error)

    def _create(self, target: Target, entry: _Entry) -> int:
        """A new file for ``entry``, with its final mode where the umask lets it (one call
        less per file; see ``_complete``)."""
        mode = creation_mode(entry.node, self._umask)
        return target.create_file(
            target.dir_fd(entry.parts[:-1]), entry.parts[-1], 0o600 if mode is None else mode
        )

    def _complete(
        self,
        target: Target,
        entry: _Entry,
        fd: int,
        written: int,
        end: int,
        error: BaseException | None,
    ) -> BaseException | None:
        """Ends a file whose content is written (or failed with ``error``): its size and
        metadata, then close. A failed file is removed, never left with wrong bytes; returns
        the problem (an OSError or CairnError; anything else is raised)."""
        node = entry.node
        try:
            if error is not None:
                raise error
            if end < node.size:
                os.ftruncate(fd, node.size)  # the file ends in a hole
            problems = apply_to_fd(
                fd,
                node,
                owner=target.setgid_seen or not owned_from_creation(node),
                mode=creation_mode(node, self._umask) is None,
            )
        except BaseException as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(entry.parts[-1], dir_fd=target.dir_fd(entry.parts[:-1]))
            if isinstance(e, (OSError, CairnError)):
                return e
            raise
        os.close(fd)
        for problem in problems:
            self._error(b"/".join(entry.parts), problem)
        with self._lock:
            self.summary.files += 1
            self.summary.bytes_written += written
        self.progress.item_done(b"/".join(entry.parts), node.size)
        return None

    def _write_blobs(
        self,
        fd: int,
        blob_ids: list[bytes],
        offset: int,
        loaded: dict[bytes, bytes] | None = None,
        lock: threading.Lock | None = None,
    ) -> tuple[int, int, int]:
        """Writes blobs at ``offset`` of a new file, zero chunks as holes: (bytes written, end
        of the last bytes written, offset after the last blob). Blobs not in ``loaded`` are
        read in runs."""
        loaded = loaded or {}
        stream = self._read_runs([b for b in blob_ids if b not in loaded])
        written = end = 0
        for blob_id in blob_ids:
            data: bytes | memoryview | None = loaded.get(blob_id)
            if data is None:
                data = next(stream)
            if not is_zero(data):
                view = memoryview(data)
                pos = offset
                with lock or contextlib.nullcontext():
                    while view:
                        n = os.pwrite(fd, view, pos)
                        view, pos = view[n:], pos + n
                written += len(data)
                end = pos
            offset += len(data)
            self.progress.bytes_done(len(data))
        return written, end, offset

    def _link(self, target: Target, entry: _Entry, first: tuple[bytes, ...]) -> None:
        src = target.open_dir(first[:-1])
        try:
            dst = target.open_dir(entry.parts[:-1])
            try:
                st = os.stat(first[-1], dir_fd=src, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, "first path of the hardlink group is not a file")
                target.clear(dst, entry.parts[-1])
                os.link(
                    first[-1],
                    entry.parts[-1],
                    src_dir_fd=src,
                    dst_dir_fd=dst,
                    follow_symlinks=False,
                )
            finally:
                os.close(dst)
        finally:
            os.close(src)
        with self._lock:
            self.summary.files += 1

    # ------------------------------------------------------------------ verification
    def _verify(self, target: Target, entries: list[_Entry]) -> None:
        chunker = Chunker(self.repo.config.chunker)
        for entry in entries:
            path = b"/".join(entry.parts)
            try:
                fd = target.open_file(target.dir_fd(entry.parts[:-1]), entry.parts[-1])
                with os.fdopen(fd, "rb") as f:
                    ids = [self.repo.blob_id(c) for c in chunker.chunks(f)]
            except OSError as e:
                self._error(path, f"cannot verify: {e.strerror}")
                continue
            if ids != entry.node.content:
                self._error(path, "restored content differs from the snapshot")
            else:
                self.summary.verified += 1

    def _error(self, path: bytes, message: str) -> None:
        with self._lock:
            self.summary.errors += 1
        self.progress.warning(path, message)


_Outcome = list[tuple[_Entry, BaseException | None]]  # files a task ended, each with its problem


def _run_read(run: _Run) -> DataRead:
    """The one read that covers a run of blobs stored back to back."""
    first, last = run[0][1], run[-1][1]
    assert first is not None and last is not None
    return DataRead(first.pack, first.offset, last.offset + last.length - first.offset)


def _message(e: BaseException) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)
