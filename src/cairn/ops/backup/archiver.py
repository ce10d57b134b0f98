"""Walks the paths to back up and builds the snapshot's trees.

The walk runs on the calling thread; file contents are read, chunked and stored in batches:
small files by a process of their own (ops/backup/reader_process.py), or where there is none
by the walking thread itself (or, with more than two readers, by threads of their own), and
large files on a thread of their own. A large file's work is almost all in native code that
releases the GIL (a few calls per megabyte), while small files cost Python work and system calls
per file, which one interpreter runs on one core whatever threads it has (two threads on small
files mostly trade the GIL back and forth): a second process takes them to the second core.

A directory's tree blob is written once all its entries are done: directories wait in a queue
in post-order (children before parents), and the queue is drained as file jobs finish, so the
walk never stops for one slow file. The number of file jobs in flight is bounded, and so are
the entries of the directories in the queue (``MAX_WAITING``): beyond it the walk waits for
files to be read and finishes every directory whose files are read and whose subdirectories
are done, not only the oldest. Memory stays flat on any tree size.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from cairn.core.cyclegc import fewer_collections
from cairn.model.hardlinks import HardlinkIndex, link_key
from cairn.model.node import DIR, FILE, Node, encode_tree
from cairn.model.snapshot import Summary
from cairn.ops.backup.file_saver import (
    DirHandle,
    FileItem,
    FileResult,
    FileSaver,
    OpenDirs,
)
from cairn.ops.backup.reader_process import LONG_PATH, ReaderProcess
from cairn.ops.backup.reuse import RACY_NS, listing_digest
from cairn.ops.excludes import TagRule
from cairn.ops.filter_patterns import PatternList
from cairn.ops.fsmeta import KINDS, node_from_stat
from cairn.ops.progress import Progress
from cairn.repo.filescache import CachedFile, FilesCache
from cairn.repo.layout import TREE_BLOB
from cairn.repo.writer import Writer


@dataclass
class BackupOptions:
    excludes: PatternList = field(default_factory=lambda: PatternList([]))
    iexcludes: PatternList = field(default_factory=lambda: PatternList([], ignore_case=True))
    # directories holding one of these tags keep only the tag file
    tag_rules: list[TagRule] = field(default_factory=list)
    exclude_larger_than: int | None = None  # files above this size are skipped
    one_file_system: bool = False
    # files read at once: one large file on a thread of its own (above 1), and the small ones
    # on the walking thread (2), or on ``workers - 1`` threads of their own (above 2: for file
    # systems where every file waits for a round trip, which threads overlap)
    workers: int = 2
    # with ``workers`` 2: small files read in a process of their own, forked when the walk
    # starts (ops/backup/reader_process.py), not by the walking thread
    reader_process: bool = False
    max_in_flight: int = 64
    scan: bool = True  # count what is to be read, in a process of its own (ops/backup/scanner.py)
    # change detection: read every file (``force``), or compare fewer of a file's attributes
    force: bool = False
    ignore_inode: bool = False  # nor the ctime
    ignore_ctime: bool = False
    # told of every file: "new", "modified" (read again) or "unchanged"
    on_file: Callable[[bytes, str], None] | None = None

    def recorded_excludes(self) -> list[str]:
        """What the snapshot's ``excludes`` records (docs/format.md §8): the patterns, then the
        other rules, each as the option that set it."""
        out = list(self.excludes.patterns)
        out += [f"--iexclude={p}" for p in self.iexcludes.patterns]
        for rule in self.tag_rules:
            tag = os.fsdecode(rule.name) + (":" + os.fsdecode(rule.header) if rule.header else "")
            out.append(f"--exclude-if-present={tag}")
        if self.exclude_larger_than is not None:
            out.append(f"--exclude-larger-than={self.exclude_larger_than}")
        return out


class DirLookup(Protocol):
    """What the walk knows of files backed up before, a directory at a time: the files cache
    (repo/filescache.py), or a parent snapshot's trees (ops/backup/parent.py). ``lookup``
    gives a directory's file entries and its tree record (ops/backup/reuse.py), if any."""

    def lookup(self, directory: bytes) -> tuple[dict[bytes, CachedFile], bytes | None]: ...

    def save_dir(
        self,
        directory: bytes,
        entries: dict[bytes, CachedFile],
        previous: dict[bytes, CachedFile],
        complete: bool = True,
        tree: bytes | None = None,
        previous_tree: bytes | None = None,
    ) -> None: ...


SMALL_FILE = 1 << 20  # files below this are read in batches, to spread per-job overhead
# entries of walked directories that may wait for their files to be read: beyond this the walk
# waits for files to be read, finishing every directory it can, so memory does not grow with
# the tree (it is the files ``max_in_flight`` batches hold, so the readers never run dry)
MAX_WAITING = 4096
BATCH_FILES = 64
BATCH_BYTES = 8 << 20
# small files' batches read by the walking thread before the reading process starts: a backup
# with few files to read (a day's changes) is over before a process of its own would pay off
READER_AFTER = 8


class _Batch:
    """Files read together by one worker; its future yields one result (or OSError) each."""

    def __init__(self) -> None:
        self.items: list[FileItem] = []
        self.size = 0
        self.here = False  # read by this process even when small files are read by a child
        self.future: Future[list[FileResult | OSError]] | None = None


@dataclass
class _FileJob:
    path: bytes
    node: Node
    # "new", "modified", "unchanged" (read again though it looked so: --force), or "hardlink"
    # (content comes from another job)
    status: str
    batch: _Batch
    index: int
    # the node's extended attributes are the reading process's to read (Archiver._xattrs_later)
    xattrs_later: bool = False

    def done(self) -> bool:
        return self.batch.future is not None and self.batch.future.done()

    def result(self) -> FileResult:
        assert self.batch.future is not None
        r = self.batch.future.result()[self.index]
        if isinstance(r, OSError):
            raise r
        return r


# An entry of a directory whose node is not built yet (see _Dir.lazy): a file taken as
# unchanged, as its content ids, or any other entry but a directory, as None. A directory is
# its _Dir's node, whose metadata is filled in when needed.
_Pending = list[bytes] | None


@dataclass
class _Dir:
    node: Node
    children: list[Node | _FileJob | _Pending] = field(default_factory=list)
    _checked: int = 0  # children before this index are known to be done
    parent: _Dir | None = None
    open_subdirs: int = 0  # subdirectories whose trees are not saved yet
    # files cache: the directory's key, what the cache had, what this run confirmed or read
    cache_key: bytes | None = None
    cached: dict[bytes, CachedFile] = field(default_factory=dict)
    known: frozenset[bytes] = frozenset()  # cached files whose blobs are all in the index
    complete: bool = True  # every file of the directory is a child (not just given paths)
    entries: dict[bytes, CachedFile] = field(default_factory=dict)
    # taking the tree from the files cache (ops/backup/reuse.py): the record the cache had
    # (tree id, listing digest), each child's name and lstat, whether its nodes are built
    # only if the recorded tree cannot be taken, and whether this walk may record its tree
    record: bytes | None = None
    stats: list[tuple[bytes, os.stat_result]] = field(default_factory=list)
    lazy: bool = False
    recordable: bool = True
    reused: bool = False

    def ready(self) -> bool:
        kids = self.children
        while self._checked < len(kids):
            c = kids[self._checked]
            if isinstance(c, _FileJob) and not c.done():
                return False
            self._checked += 1
        return True

    def finishable(self) -> bool:
        return self.open_subdirs == 0 and self.ready()


@dataclass
class _Frame:
    """A directory being walked: its entries not yet taken."""

    dir: _Dir
    prefix: bytes  # its path, ending in '/'
    entries: Iterator[os.DirEntry[str]]
    handle: DirHandle | None  # open while walked: its entries are read relative to it


class Archiver:
    def __init__(
        self,
        writer: Writer,
        files_cache: FilesCache | DirLookup | None,
        options: BackupOptions,
        progress: Progress,
    ) -> None:
        self.writer = writer
        self.cache = files_cache
        self.options = options
        self.progress = progress
        self.summary = Summary()
        self.changed_while_read: list[bytes] = []  # files stored as read, maybe inconsistent
        self._saver = FileSaver(writer, progress.bytes_done)
        self._queue: deque[_Dir] = deque()
        self._waiting = 0  # entries of the directories in the queue
        self._read_done = threading.Event()  # set whenever a batch of files has been read
        self._slots = threading.BoundedSemaphore(options.max_in_flight)
        # where files are read (see BackupOptions.workers): None is the walking thread itself
        self._pool = (
            ThreadPoolExecutor(options.workers - 1, thread_name_prefix="cairn-read")
            if options.workers > 2
            else None
        )
        self._large_pool = (
            ThreadPoolExecutor(1, thread_name_prefix="cairn-read-large")
            if options.workers > 1
            else None
        )
        # the first link of each group of hardlinks: its job, or its content ids and size
        self._hardlinks: HardlinkIndex[CachedFile | _FileJob] = HardlinkIndex()
        self.dirs_reused = 0  # directories whose recorded tree was taken (ops/backup/reuse.py)
        o = options
        self._reuse = isinstance(files_cache, FilesCache) and not (
            o.force or o.ignore_inode or o.ignore_ctime
        )
        # an entry whose ctime is this or later changed too recently for its directory's tree
        # to be recorded (ops/backup/reuse.py)
        self.recent_from = time.time_ns() - RACY_NS
        self._any_excludes = bool(o.excludes.patterns or o.iexcludes.patterns)
        self._batch = _Batch()
        self._dirs = OpenDirs()
        # small files' batches go to the reading process (started by ``_submit`` once
        # ``READER_AFTER`` batches were read here), if the options ask for one
        self._reader: ReaderProcess | None = None
        self._read_here = 0 if o.reader_process and o.workers == 2 else None

    # ------------------------------------------------------------------ entry point
    def run(self, paths: list[bytes]) -> bytes:
        """Backs up absolute ``paths``; returns the id of the root tree."""
        with fewer_collections():  # (the reading process, forked from the walk, too)
            return self._run(paths)

    def _run(self, paths: list[bytes]) -> bytes:
        try:
            if b"/" in paths:
                st = os.lstat(b"/")
                root = self._walk_tree(b"/", node_from_stat(b"", b"/", st), st.st_dev)
            else:
                root = _Dir(Node(name=b"", type=DIR))
                self._build_virtual(b"", _path_tree(paths), root)
            if not root.reused:
                self._enqueue(root)
            self._submit()
            self._drain(block=True)
            if self._reader is not None:
                self._reader.finish()  # its packs are the writer's before the trees are final
            assert root.node.subtree is not None
            return root.node.subtree
        except BaseException:
            self._saver.cancelled.set()  # stop reading: in-flight files end at their next chunk
            raise
        finally:
            if self._reader is not None:
                self._reader.abort()  # (ended already, but on an error)
            for pool in (self._pool, self._large_pool):
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
            self._dirs.close_all()  # those of files never read (an abandoned backup)

    def _build_virtual(self, prefix: bytes, spec: dict[bytes, dict], top: _Dir) -> None:  # type: ignore[type-arg]
        """Intermediate directories of the given paths, with their real metadata; each given
        path is walked whole. Iterative: paths of any depth cost no stack."""
        stack: list[tuple[bytes, dict[bytes, dict], _Dir, Iterator[bytes]]] = []  # type: ignore[type-arg]

        def enter(prefix: bytes, spec: dict[bytes, dict], d: _Dir) -> None:  # type: ignore[type-arg]
            d.complete = False
            d.recordable = False  # a few of its entries: its tree is not the directory's
            stack.append((prefix, spec, d, iter(sorted(spec))))

        enter(prefix, spec, top)
        while stack:
            prefix, spec, parent, names = stack[-1]
            name = next(names, None)
            if name is None:
                stack.pop()
                if stack:
                    self._finish_later(parent, stack[-1][2])
                continue
            path = prefix + b"/" + name
            try:
                st = os.lstat(path)
                node = node_from_stat(name, path, st)
            except OSError as e:
                self._warn(path, e)
                continue
            sub = spec[name]
            if sub is _LEAF:
                if self.cache is not None and parent.cache_key is None:
                    self._look_up(parent, prefix, walked=False)
                if node.type == DIR:
                    self._finish_later(self._walk_tree(path, node, st.st_dev), parent)
                else:
                    self._add_entry(parent, path, name, node, st)
            elif node.type != DIR:
                self._warn(path, OSError(0, "is not a directory"))
            else:
                enter(path, sub, _Dir(node))

    # ------------------------------------------------------------------ the walk
    def _walk_tree(self, path: bytes, node: Node, root_dev: int) -> _Dir:
        """Walks the directory ``path`` and everything below it; each subdirectory is handed
        to ``_finish_later`` once walked (so the queue is in post-order). Iterative: a tree
        of any depth costs no stack. Every entry is read relative to its directory's open
        descriptor (the walked directories' descriptors stay open), never by its full path:
        paths longer than PATH_MAX are backed up like any other."""
        top = self._read_dir(path, node, None, path)
        stack = [top]
        limit = self.options.exclude_larger_than
        while stack:
            frame = stack[-1]
            entry = next(frame.entries, None)
            if entry is None:
                stack.pop()
                if frame.handle is not None:
                    self._end_listing(frame)
                    frame.handle.release()
                if stack:
                    self._finish_later(frame.dir, stack[-1].dir)
                continue
            assert frame.handle is not None  # a directory that could not be read has no entries
            name = entry.name.encode(_FS_ENCODING, _FS_ERRORS)
            child = frame.prefix + name
            if self._any_excludes and self._excluded(child):
                continue
            d = frame.dir
            dir_fd = frame.handle.fd
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if limit is not None and self._too_large(st):
                    continue
                later = False
                if d.lazy:
                    # built only if the recorded tree cannot be taken (``_end_listing``)
                    child_node = None
                    if stat.S_IFMT(st.st_mode) not in KINDS:
                        raise OSError(errno.EINVAL, "unsupported file type", child)
                else:
                    later = self._reader is not None and self._xattrs_later(d, child, name, st)
                    child_node = node_from_stat(name, child, st, dir_fd, xattrs=not later)
            except OSError as e:
                self._warn(child, e)
                d.recordable = False
                continue
            d.stats.append((name, st))
            if st.st_ctime_ns >= self.recent_from:
                d.recordable = False  # it may change again within the tick it was seen in
            if stat.S_ISREG(st.st_mode):
                where = (frame.handle, name)
                job = self._file(d, child, name, child_node, st, where)
                if later:
                    assert isinstance(job, _FileJob) and job.status == "new"
                    job.xattrs_later = True
                d.children.append(job)
                continue
            if not stat.S_ISDIR(st.st_mode):
                d.children.append(child_node)
                continue
            if child_node is None:
                child_node = Node(name=name, type=DIR)
            if self.options.one_file_system and st.st_dev != root_dev:
                # the mount point itself, but nothing below it
                self._finish_later(_Dir(child_node), d)
            else:
                stack.append(self._read_dir(child, child_node, frame.handle, name))
        return top.dir

    @staticmethod
    def _xattrs_later(d: _Dir, path: bytes, name: bytes, st: os.stat_result) -> bool:
        """Whether an entry is a file that the reading process will certainly read (a new
        small file, linked once, whose path it can open): its extended attributes are then
        read there, from its descriptor, not here by its path (about a seventh of the walk's
        time on a tree of small files)."""
        return (
            stat.S_ISREG(st.st_mode)
            and st.st_size < SMALL_FILE
            and st.st_nlink == 1
            and len(path) < LONG_PATH
            and name not in d.cached
        )

    def _read_dir(self, path: bytes, node: Node, parent: DirHandle | None, name: bytes) -> _Frame:
        """A directory (``name`` in ``parent``, or the path ``name``), held open; its entries,
        sorted, and what the files cache knows of it."""
        d = _Dir(node)
        prefix = path.rstrip(b"/") + b"/"
        try:
            handle = self._dirs.open(name, parent)
        except OSError as e:
            self._warn(path, e)
            d.recordable = False
            return _Frame(d, prefix, iter(()), None)
        try:
            with os.scandir(handle.fd) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            handle.release()
            self._warn(path, e)
            d.recordable = False
            return _Frame(d, prefix, iter(()), None)
        if self.options.tag_rules:
            entries = self._tagged(prefix, entries)
        if self.cache is not None:
            self._look_up(d, prefix[:-1], walked=True)
        return _Frame(d, prefix, iter(entries), handle)

    def _look_up(self, d: _Dir, key: bytes, walked: bool) -> None:
        """What the files cache knows of a directory: its files, which of them have all their
        blobs in the index (looked up at once), and, for a directory the walk lists
        (``walked``), the tree recorded for it if that tree may be taken."""
        assert self.cache is not None
        d.cache_key = key
        d.cached, d.record = self.cache.lookup(key)
        ids = [b for f in d.cached.values() for b in f.content]
        take = walked and d.record is not None and self._reuse
        if take:
            assert d.record is not None
            ids.append(d.record[:32])
        if not ids:
            d.known = frozenset(d.cached)
            d.lazy = take
            return
        found = iter(self.writer.has_blobs(ids))
        known = []
        for name, f in d.cached.items():
            if all([next(found) for _ in f.content]):
                known.append(name)
        d.known = frozenset(known)
        d.lazy = take and next(found)  # the recorded tree is in the repository

    def _excluded(self, path: bytes) -> bool:
        o = self.options
        return o.excludes.matches(path) or o.iexcludes.matches(path)

    def _too_large(self, st: os.stat_result) -> bool:
        limit = self.options.exclude_larger_than
        return limit is not None and stat.S_ISREG(st.st_mode) and st.st_size > limit

    def _tagged(self, prefix: bytes, entries: list[os.DirEntry[str]]) -> list[os.DirEntry[str]]:
        """A directory's entries, or only its tag files if a tag rule holds for it."""
        names = {os.fsencode(e.name) for e in entries}
        tags = {r.name for r in self.options.tag_rules if r.name in names and r.holds(prefix)}
        if not tags:
            return entries
        return [e for e in entries if os.fsencode(e.name) in tags]

    def _add_entry(
        self,
        parent: _Dir,
        path: bytes,
        name: bytes,
        node: Node | None,
        st: os.stat_result,
        where: tuple[DirHandle, bytes] | None = None,
    ) -> None:
        """A file or other non-directory entry of ``parent`` (``where``: its directory and
        name there; None: it is opened by its path). ``node`` is None in a lazy directory."""
        if stat.S_ISREG(st.st_mode):
            parent.children.append(self._file(parent, path, name, node, st, where))
        else:
            parent.children.append(node)

    def _file(
        self,
        parent: _Dir,
        path: bytes,
        name: bytes,
        node: Node | None,
        st: os.stat_result,
        where: tuple[DirHandle, bytes] | None,
    ) -> Node | _FileJob | list[bytes]:
        """A regular file: its node (its content ids when ``node`` is None), or the job that
        reads it."""
        cached = parent.cached.get(name)
        self.summary.bytes_total += st.st_size
        group = link_key(st.st_dev, st.st_ino, st.st_nlink)
        o = self.options
        looks_unchanged = cached is not None and cached.matches(st, o.ignore_inode, o.ignore_ctime)
        unchanged = looks_unchanged and not o.force
        first = self._hardlinks.get(group) if group is not None else None
        if first is not None:
            self.progress.bytes_done(st.st_size)  # counted as the total counts it (a file once)
            if isinstance(first, _FileJob):
                if node is None:
                    node = Node(name=name, type=FILE)
                return _FileJob(path, node, "hardlink", first.batch, first.index)
            if unchanged and cached is not None and cached.content == first.content:
                parent.entries[name] = cached
            if node is None:
                return first.content  # its size is the file's (the lstat of the same inode)
            node.content, node.size = first.content, first.size
            return node
        if unchanged and cached is not None and name in parent.known:
            self.summary.files_unchanged += 1
            parent.entries[name] = cached
            if o.on_file is not None:
                o.on_file(path, "unchanged")
            self.progress.item_done(path, st.st_size)
            self.progress.bytes_done(st.st_size)
            if group is not None:
                self._hardlinks.add(group, cached)
            if node is None:
                return cached.content
            node.content = cached.content
            return node
        if node is None:
            node = Node(name=name, type=FILE)
        large = st.st_size >= SMALL_FILE
        # read here, alone: a large file, or one whose path the reading process cannot open
        alone = large or (self._reader is not None and len(path) >= LONG_PATH)
        if alone:
            self._submit()  # the small files before it go on without it
        batch = self._batch
        batch.here = alone
        # read again: the cache said nothing, or it changed, or --force (the file is unchanged
        # if it looks so), or its blobs are gone from the repository (counted as changed)
        status = "new" if cached is None else "modified"
        if looks_unchanged and o.force:
            status = "unchanged"
        job = _FileJob(path, node, status, batch, len(batch.items))
        # the directory stays open until the file is opened by a reading thread (the reading
        # process opens it by its path)
        if where is not None and (self._reader is None or alone):
            batch.items.append((path, st, (where[0].hold(), where[1])))
        else:
            batch.items.append((path, st, None))
        batch.size += st.st_size
        if alone or len(batch.items) >= BATCH_FILES or batch.size >= BATCH_BYTES:
            self._submit()
        if group is not None:
            self._hardlinks.add(group, job)
        return job

    def _submit(self) -> None:
        """Has the batch being filled read: here, or by a reading thread (blocking while too
        many batches are in flight)."""
        batch = self._batch
        if not batch.items:
            return
        self._batch = _Batch()
        if self._reader is not None and not batch.here:
            self._slots.acquire()
            try:
                batch.future = self._reader.submit(batch.items)
            except BaseException:
                self._slots.release()
                raise
            batch.future.add_done_callback(self._batch_read_elsewhere)
            return
        large = batch.size >= SMALL_FILE and len(batch.items) == 1
        pool = self._large_pool if large else self._pool
        if pool is None:
            # read here, on the walking thread: for files this small the walk and the reading
            # both stand on the GIL, and a second thread would only hand it back and forth at
            # every system call (docs/performance.md, "Small files read by the walk")
            batch.future = Future()
            batch.future.set_result(self._saver.save_files(batch.items))
            if self._read_here is not None and not batch.here:
                self._read_here += 1
                if self._read_here >= READER_AFTER:
                    # the next batch, empty yet, is the first the reading process reads
                    self._read_here = None
                    self._reader = ReaderProcess(self.writer)
            return
        self._slots.acquire()
        try:
            batch.future = pool.submit(self._saver.save_files, batch.items)
        except BaseException:
            self._slots.release()
            raise
        batch.future.add_done_callback(self._batch_read)

    def _batch_read(self, _future: Future[list[FileResult | OSError]]) -> None:
        self._slots.release()
        self._read_done.set()

    def _batch_read_elsewhere(self, future: Future[list[FileResult | OSError]]) -> None:
        """A batch the reading process read: its bytes counted as read, as the reading
        threads count theirs."""
        if future.exception() is None:
            done = sum(r.size for r in future.result() if isinstance(r, FileResult))
            if done:
                self.progress.bytes_done(done)
        self._batch_read(future)

    # ------------------------------------------------------------------ taking a recorded tree
    def _end_listing(self, frame: _Frame) -> None:
        """Once every entry of a lazy directory is looked at, with the directory still open:
        takes the tree recorded for it if its listing is the one recorded with it (and every
        file and subdirectory is done: taken from the cache), else builds the nodes it put
        off (ops/backup/reuse.py)."""
        d = frame.dir
        if not d.lazy:
            return
        d.lazy = False
        extras: list[bytes | None] | None = [] if d.recordable else None
        if extras is not None:
            for (_name, st), child in zip(d.stats, d.children, strict=True):
                if stat.S_ISDIR(st.st_mode):
                    assert isinstance(child, Node)
                    if child.subtree is None:
                        extras = None  # a subdirectory built again: so is this one
                        break
                    extras.append(child.subtree)
                elif type(child) is list:
                    extras.append(b"".join(child))
                elif child is None:
                    extras.append(None)
                else:
                    extras = None  # a file being read
                    break
        assert d.record is not None
        if extras is not None and listing_digest(d.stats, extras) == d.record[32:]:
            d.reused = True
            d.node.subtree = d.record[:32]
            self.dirs_reused += 1
            self.summary.dirs_unchanged += 1
            assert self.cache is not None and d.cache_key is not None
            self.cache.save_dir(d.cache_key, d.entries, d.cached, d.complete, d.record, d.record)
            return
        self._build_nodes(d, frame)

    def _build_nodes(self, d: _Dir, frame: _Frame) -> None:
        """The nodes a lazy directory put off, read now; an entry that cannot be read any
        more (gone since) is left out, with a warning, as if it had failed when first seen."""
        assert frame.handle is not None
        dir_fd = frame.handle.fd
        children: list[Node | _FileJob | _Pending] = []
        stats: list[tuple[bytes, os.stat_result]] = []
        for (name, st), child in zip(d.stats, d.children, strict=True):
            path = frame.prefix + name
            try:
                full = node_from_stat(name, path, st, dir_fd)
            except OSError as e:
                self._warn(path, e)
                d.recordable = False
                if type(child) is list:
                    self.summary.files_unchanged -= 1
                elif isinstance(child, _FileJob):
                    child.status = "gone"
                continue
            if type(child) is list:
                full.content = child
                child = full
            elif child is None:
                child = full
            else:
                node = child.node if isinstance(child, _FileJob) else child
                assert isinstance(node, Node)
                _fill(node, full)
            children.append(child)
            stats.append((name, st))
        d.children, d.stats = children, stats

    # ------------------------------------------------------------------ finishing trees
    def _finish_later(self, d: _Dir, parent: _Dir) -> None:
        parent.children.append(d.node)
        d.parent = parent
        if d.reused:
            return
        parent.open_subdirs += 1
        self._enqueue(d)
        self._drain(block=False)
        if self._waiting > MAX_WAITING:
            self._make_room()

    def _make_room(self) -> None:
        """Waits until the directories waiting for their files hold at most ``MAX_WAITING``
        entries, finishing each as soon as it can be, not only the oldest (a large file being
        read holds its directory, not the ones walked after it)."""
        self._submit()  # the files they wait for may not be handed out yet
        while self._waiting > MAX_WAITING and self._queue:
            self._read_done.clear()
            self._finish_ready()
            if self._waiting > MAX_WAITING:
                self._read_done.wait(1.0)

    def _enqueue(self, d: _Dir) -> None:
        self._queue.append(d)
        self._waiting += len(d.children)

    def _drain(self, block: bool) -> None:
        if block:
            self._submit()
        while self._queue and (block or self._queue[0].ready()):
            self._finish(self._queue.popleft())

    def _finish_ready(self) -> None:
        """Finishes every queued directory whose files are read and whose subdirectories are
        finished (those come before it in the queue, which is in walk order)."""
        left: deque[_Dir] = deque()
        for d in self._queue:
            if d.finishable():
                self._finish(d)
            else:
                left.append(d)
        self._queue = left

    def _finish(self, d: _Dir) -> None:
        self._waiting -= len(d.children)
        if d.parent is not None:
            d.parent.open_subdirs -= 1
        nodes: list[Node] = []
        for child in d.children:
            if isinstance(child, _FileJob):
                node = self._collect(child, d)
                if node is None:
                    d.recordable = False
                    continue
                nodes.append(node)
            else:
                assert isinstance(child, Node)
                nodes.append(child)
        d.node.subtree = save_tree(self.writer, nodes, self.summary)
        if self.cache is not None and d.cache_key is not None:
            record = None
            if d.recordable:
                extras = [
                    b"".join(n.content) if n.type == FILE else n.subtree if n.type == DIR else None
                    for n in nodes
                ]
                record = d.node.subtree + listing_digest(d.stats, extras)
            self.cache.save_dir(d.cache_key, d.entries, d.cached, d.complete, record, d.record)

    def _collect(self, job: _FileJob, d: _Dir) -> Node | None:
        if job.batch.future is None:
            self._submit()
        try:
            result = job.result()
        except OSError as e:
            self._warn(job.path, e)
            return None
        if job.status == "gone":
            return None  # its metadata could not be read (Archiver._build_nodes)
        node = job.node
        node.content = result.content
        node.size = result.size
        if job.xattrs_later:
            assert result.xattrs is not None  # read by the reading process
            node.xattrs = result.xattrs
        if not result.changed_while_reading:
            d.entries[node.name] = CachedFile(
                result.inode, result.size, result.mtime, result.ctime, result.content
            )
        else:
            d.recordable = False
        if job.status == "hardlink":
            return node
        self.summary.bytes_read += result.size
        self.summary.data_blobs_added += result.blobs_added
        self.summary.bytes_added += result.bytes_added
        self.summary.bytes_stored += result.bytes_stored
        if job.status == "new":
            self.summary.files_new += 1
        elif job.status == "unchanged":
            self.summary.files_unchanged += 1
        else:
            self.summary.files_changed += 1
        if self.options.on_file is not None:
            self.options.on_file(job.path, job.status)
        if result.changed_while_reading:
            self.summary.files_changed_while_read += 1
            self.changed_while_read.append(job.path)
            self.progress.warning(job.path, "file changed while it was being read")
        self.progress.item_done(job.path, result.size)
        return node

    def _warn(self, path: bytes, error: OSError) -> None:
        self.summary.errors += 1
        self.progress.warning(path, error.strerror or str(error))


def save_tree(writer: Writer, nodes: list[Node], summary: Summary) -> bytes:
    """Stores one directory's tree blob (once) and counts it; returns its id."""
    tree = encode_tree(nodes)
    saved = writer.save_blob(TREE_BLOB, tree)
    if saved.new:
        summary.dirs_new += 1
        summary.tree_blobs_added += 1
        summary.bytes_added += len(tree)
        summary.bytes_stored += saved.stored
    else:
        summary.dirs_unchanged += 1
    return saved.id


# what node_from_stat reads beyond a node's name and type, filled into a node made before
_METADATA = tuple(f for f in Node.__slots__ if f not in ("name", "type", "content", "subtree"))


def _fill(node: Node, full: Node) -> None:
    for f in _METADATA:
        setattr(node, f, getattr(full, f))


# what os.fsencode does, without its call per entry
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
_LEAF: dict = {}  # type: ignore[type-arg]  # the marker of a path given to back up


def _path_tree(paths: list[bytes]) -> dict[bytes, dict]:  # type: ignore[type-arg]
    """{'home': {'u': {'docs': LEAF}}} for ['/home/u/docs']; a path inside another is dropped."""
    root: dict[bytes, dict] = {}  # type: ignore[type-arg]
    for path in sorted(set(paths), key=len):
        parts = [p for p in path.split(b"/") if p]
        node = root
        for i, part in enumerate(parts):
            if node.get(part) is _LEAF:
                break
            if i == len(parts) - 1:
                node[part] = _LEAF
            else:
                node = node.setdefault(part, {})
    return root
