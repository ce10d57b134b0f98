"""Writing a file or a directory of a snapshot to a stream, without touching the file system.

A file is written as its bytes (so ``cairn dump latest /db.sql | psql`` works); a directory as a
POSIX tar stream (PAX format: headers made by tarfile, written with the data as it comes by
``cairn.ops.tarstream``: nothing is seeked or buffered whole). Entry names are the snapshot
paths without the leading '/', as tar writes absolute paths. The tar keeps modes, owners (ids
and names), nanosecond mtimes, symlinks, hardlinks, FIFOs, device nodes and extended attributes
(SCHILY.xattr, names as GNU tar writes them: raw bytes, '%' and '=' escaped as %25 and %3D);
names that are not valid UTF-8 are written as their raw bytes (PAX hdrcharset=BINARY). A file
with holes (the blob of zeros, ``cairn.ops.restore.zeros``) is written as a sparse member in the
PAX format 1.0 GNU tar reads: only its data, after a map of where it goes, so ``tar -xf`` makes
it sparse again. Sockets cannot be archived and are skipped, as tar does. Tree entries that
break the format's rules (names with '/' or NUL, '.', '..', a name seen before in the directory,
invalid fields) never reach the tar: they are reported, as restore reports them, and the dump
ends with an error.

The trees are walked by the restore's planner, and the files' blobs read as a restore reads them
(``cairn.ops.restore.schedule``: blobs stored back to back in one request, duplicates from a
small cache), ahead of the writer and across files (``cairn.ops.restore.stream``: the small
files stored together in a pack come with one request), several reads in flight, so a dump from
a remote store streams at the store's speed rather than wait a round trip per file; every blob
is authenticated before a byte of it is written.
"""

from __future__ import annotations

import itertools
import os
import tarfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from cairn.core.errors import IntegrityError, NotFoundError, UsageError
from cairn.model.hardlinks import HardlinkIndex
from cairn.model.node import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.progress import Progress
from cairn.ops.restore.count import EntryCounter
from cairn.ops.restore.plan import Planner
from cairn.ops.restore.schedule import Scheduler
from cairn.ops.restore.source import BlobSource
from cairn.ops.restore.stream import BlobStream
from cairn.ops.restore.zeros import ZeroBlob
from cairn.ops.tarstream import TarStream
from cairn.ops.treewalk import TreeProblem
from cairn.repo.repository import Repository

BYTES_AHEAD = 16 << 20  # blobs read ahead of the one being written, at most about this many
ENTRIES_AHEAD = 4096  # and the entries of the tar looked at ahead of the one being written
_TAR_TYPES = {
    FILE: tarfile.REGTYPE,
    DIR: tarfile.DIRTYPE,
    SYMLINK: tarfile.SYMTYPE,
    FIFO: tarfile.FIFOTYPE,
    CHARDEV: tarfile.CHRTYPE,
    BLOCKDEV: tarfile.BLKTYPE,
}


class Archive(Protocol):
    """Where the dump writes a directory's entries: a ``TarStream``, or a ``ZipStream``."""

    sparse: bool  # whether a file with holes may be a sparse member
    compresses: bool  # whether it compresses what it writes (and wants to know what will)

    def add(
        self,
        info: tarfile.TarInfo,
        data: Iterable[bytes | memoryview] = (),
        compressible: bool | None = True,
    ) -> None: ...

    def close(self) -> None: ...


@dataclass
class DumpSummary:
    kind: str = "file"  # "file": the bytes of one file; "tar": a directory as a tar stream
    files: int = 0
    dirs: int = 0
    others: int = 0
    skipped: int = 0  # sockets: a tar cannot hold them
    errors: int = 0  # entries and directories of damaged or crafted trees, left out
    bytes: int = 0  # file content written

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class Dumper:
    def __init__(
        self, repo: Repository, progress: Progress, workers: int = 4, tree_threads: int = 0
    ) -> None:
        """``workers``: blob reads in flight; ``tree_threads``: trees read ahead of the walk."""
        self.repo = repo
        self.progress = progress
        self.summary = DumpSummary()
        self._planner = Planner(repo, on_problem=self._problem, tree_threads=tree_threads)
        self._tree_threads = tree_threads
        self._source = BlobSource(repo.reader)
        self._zero = ZeroBlob(repo.config.chunker, repo.blob_id)
        self._schedule = Scheduler(repo.index.get, self._source, zero=self._zero)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="cairn-dump")
        self._reads = workers  # reads in flight (each a round trip on an object store)

    def run(self, snap: Snapshot, path: str, out: BinaryIO) -> DumpSummary:
        """Writes the file or directory at ``path`` ('/db.sql' or 'db.sql') to ``out``."""
        node, at = self.find(snap, path)
        return self.write(node, at, out)

    def find(self, snap: Snapshot, path: str) -> tuple[Node, bytes]:
        """The file or directory at ``path``, and its path in the snapshot (b"" for the root);
        NotFoundError or UsageError before anything is written."""
        node, at = self._planner.top(snap, path)
        if node.type not in (FILE, DIR):
            raise UsageError(f"{path} is a {node.type}: dump writes files and directories")
        return node, at

    def write(
        self, node: Node, at: bytes, out: BinaryIO, archive: Archive | None = None
    ) -> DumpSummary:
        """Writes ``find``'s file as its bytes, or directory as a tar stream, to ``out``; or
        the directory to ``archive`` (a ``ZipStream``), which writes to ``out``."""
        counter = None
        try:
            if node.type == FILE:
                self.progress.start("dump", 1, node.size)
                self._write_file(node, out)
                self.summary.files = 1
                self.progress.item_done(at, node.size)
            else:
                self.summary.kind = "tar"
                self.progress.start("dump")
                counter = self._count(node, at)
                self._write_tar(node, at, archive or TarStream(out))
        finally:
            if counter is not None:
                counter.stop()
            self._pool.shutdown(wait=True, cancel_futures=True)
        return self.summary

    def _count(self, top: Node, at: bytes) -> EntryCounter | None:
        """Counts the files and bytes of the tar on a thread, by a walk of its own (problems
        are reported by the tar's walk)."""
        if top.subtree is None:
            return None
        planner = Planner(self.repo, on_problem=lambda p: None, tree_threads=self._tree_threads)
        counter = EntryCounter(planner.below(top.subtree, at, at.count(b"/") + 1))
        counter.start(self.progress)
        return counter

    # ------------------------------------------------------------------ one file
    def _write_file(self, node: Node, out: BinaryIO) -> None:
        stream = self._stream(lambda: False)
        try:
            stream.add(node.content)
            for data in self._content(stream, node):
                out.write(data)
        finally:
            stream.close()
        out.flush()

    def _stream(self, more: Callable[[], bool]) -> BlobStream:
        def raw_length(blob_id: bytes) -> int:
            entry = self.repo.index.get(blob_id)
            return entry.raw_length if entry is not None else 0

        return BlobStream(
            self._schedule, self._source, self._pool, more, self._reads, BYTES_AHEAD, raw_length
        )

    def _content(self, stream: BlobStream, node: Node, holes: bool = False) -> Iterator[bytes]:
        """The file's bytes blob by blob, from ``stream`` (to which the file was added); checks
        the total against the recorded size first. ``holes``: without the blobs of zeros (a
        sparse member's data)."""
        total = 0
        for blob_id in node.content:
            entry = self.repo.index.get(blob_id)
            if entry is None:
                raise NotFoundError(f"blob {blob_id.hex()} is not in the index")
            total += entry.raw_length
        if total != node.size:
            raise IntegrityError(
                f"file {os.fsdecode(node.name)}",
                f"content is {total} bytes, the snapshot says {node.size}",
            )
        for data in stream.take(len(node.content), holes):
            self.summary.bytes += len(data)
            self.progress.bytes_done(len(data))
            yield data

    # ------------------------------------------------------------------ a directory as tar
    def _write_tar(self, top: Node, at: bytes, tar: Archive) -> None:
        links: HardlinkIndex[str] = HardlinkIndex()
        entries = self._entries(top, at)
        walked: deque[tuple[bytes, Node]] = deque()
        ahead: HardlinkIndex[bool] = HardlinkIndex()  # ``links`` as the writer will see it

        def more() -> bool:
            """Looks at the next entry, adding its blobs to the stream if the writer will
            take them; False at the end, or when far enough ahead."""
            if len(walked) >= ENTRIES_AHEAD:
                return False
            entry = next(entries, None)
            if entry is None:
                return False
            walked.append(entry)
            node = entry[1]
            if node.type == FILE and ahead.first(node, True) is None:
                stream.add(node.content)
            return True

        stream = self._stream(more)
        try:
            while walked or more():
                path, node = walked.popleft()
                self._add(tar, stream, path, node, links)
        except BaseException:
            abort = getattr(tar, "abort", None)
            if abort is not None:
                abort()
            raise
        finally:
            stream.close()
        tar.close()

    def _entries(self, top: Node, at: bytes) -> Iterator[tuple[bytes, Node]]:
        """The tar's entries, in order: the directory itself (unless the snapshot's root), and
        everything below it."""
        if at:
            yield at, top
        if top.subtree is not None:
            for entry in self._planner.below(top.subtree, at, at.count(b"/") + 1):
                yield entry.path, entry.node

    def _data_regions(self, node: Node) -> list[tuple[int, int]] | None:
        """Where a file with holes has data, (offset, length) each: its blobs but the blob of
        zeros; None for a file without it (or whose blobs the index lacks: ``_content`` says
        so)."""
        if not node.content or self._zero.id not in node.content:
            return None
        regions: list[tuple[int, int]] = []
        offset = 0
        for blob_id in node.content:
            x = self.repo.index.get(blob_id)
            if x is None:
                return None
            if blob_id != self._zero.id:
                if regions and sum(regions[-1]) == offset:
                    regions[-1] = (regions[-1][0], regions[-1][1] + x.raw_length)
                else:
                    regions.append((offset, x.raw_length))
            offset += x.raw_length
        return regions

    def _compressible(self, node: Node) -> bool | None:
        """Whether the file's data compresses: most of it is in blobs that zstd shrank (None:
        not known, where the repository compresses nothing or the index lacks a blob)."""
        if self.repo.config.compression_level <= 0:
            return None
        packed = total = 0
        for blob_id in node.content:
            x = self.repo.index.get(blob_id)
            if x is None:
                return None
            total += x.raw_length
            if x.compressed:
                packed += x.raw_length
        return 2 * packed >= total

    def _problem(self, problem: TreeProblem) -> None:
        """A tree entry that breaks the format's rules (an unsafe or repeated name: tarfile
        would extract it outside its directory), or a listing that cannot be read: reported
        and left out of the tar, like restore does."""
        self.summary.errors += 1
        self.progress.warning(problem.path or b"/", problem.describe())

    def _add(
        self,
        tar: Archive,
        stream: BlobStream,
        path: bytes,
        node: Node,
        links: HardlinkIndex[str],
    ) -> None:
        """Writes one entry; a file's blobs are the next ones ``stream`` has."""
        if node.type == SOCKET:
            self.summary.skipped += 1
            self.progress.warning(path, "a socket cannot be put in a tar archive, skipped")
            return
        info = tar_info(path, node)
        first = links.first(node, info.name)
        if first is not None:
            info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
            tar.add(info)
            self.summary.files += 1
            self.progress.bytes_done(node.size)  # as the total counts it: the file once
            return
        if node.type == FILE:
            regions = self._data_regions(node) if tar.sparse else None
            content = self._content(stream, node, holes=regions is not None)
            compressible = self._compressible(node) if tar.compresses else None
            if regions is None:
                tar.add(info, content, compressible)
            else:
                sparse_map = make_sparse(info, regions)
                tar.add(info, itertools.chain([sparse_map], content), compressible)
                self.progress.bytes_done(node.size - sum(n for _, n in regions))  # holes
            self.summary.files += 1
            self.progress.item_done(path, node.size)
        else:
            tar.add(info)
            if node.type == DIR:
                self.summary.dirs += 1
            else:
                self.summary.others += 1


def pax_time(ns: int) -> str:
    """Nanoseconds as a PAX decimal: 8 -> '0.000000008', -1500000000 -> '-1.500000000'."""
    sign, n = ("-", -ns) if ns < 0 else ("", ns)
    return f"{sign}{n // 1_000_000_000}.{n % 1_000_000_000:09d}"


def tar_info(path: bytes, node: Node) -> tarfile.TarInfo:
    """The tar header of one entry ('/a/b' becomes 'a/b')."""
    info = tarfile.TarInfo(path.lstrip(b"/").decode("utf-8", "surrogateescape"))
    info.type = _TAR_TYPES[node.type]
    info.mode = node.mode
    info.uid, info.gid = node.uid, node.gid
    info.uname, info.gname = node.user or "", node.group or ""
    info.mtime = node.mtime // 1_000_000_000
    pax: dict[str, str] = {}
    if node.mtime % 1_000_000_000 or node.mtime < 0:
        pax["mtime"] = pax_time(node.mtime)
    if node.type == FILE:
        info.size = node.size
    elif node.type == SYMLINK:
        info.linkname = (node.target or b"").decode("utf-8", "surrogateescape")
    elif node.type in (CHARDEV, BLOCKDEV):
        info.devmajor, info.devminor = os.major(node.rdev), os.minor(node.rdev)
    for name, value in node.xattrs:
        escaped = name.replace(b"%", b"%25").replace(b"=", b"%3D")
        pax[_Keyword(b"SCHILY.xattr." + escaped)] = value.decode("utf-8", "surrogateescape")
    info.pax_headers = pax
    return info


def make_sparse(info: tarfile.TarInfo, regions: list[tuple[int, int]]) -> bytes:
    """Makes ``info`` (a regular file's header) that of a sparse member in GNU tar's PAX format
    1.0 with data in ``regions`` (offset, length), and returns the sparse map its data starts
    with (padded to a block); the regions' data follows it."""
    name, size = info.name, info.size
    if not regions or sum(regions[-1]) < size:
        regions = [*regions, (size, 0)]  # the file ends in a hole: its size, in the map
    lines = [str(len(regions))]
    for offset, length in regions:
        lines += [str(offset), str(length)]
    sparse_map = ("\n".join(lines) + "\n").encode("ascii")
    sparse_map += bytes(-len(sparse_map) % tarfile.BLOCKSIZE)
    head, _, tail = name.rpartition("/")
    info.name = f"{head}/GNUSparseFile.0/{tail}" if head else f"GNUSparseFile.0/{tail}"
    info.size = len(sparse_map) + sum(length for _, length in regions)
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": str(size),
        **info.pax_headers,
    }
    return sparse_map


class _Keyword(str):
    """A PAX keyword that may hold any bytes (an xattr's name), written as those bytes:
    tarfile encodes keywords as strict UTF-8, and GNU tar reads them back as they are."""

    def __new__(cls, raw: bytes) -> _Keyword:
        return super().__new__(cls, raw.decode("utf-8", "surrogateescape"))

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return str.encode(self, encoding, "surrogateescape")
