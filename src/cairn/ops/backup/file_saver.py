"""Reads one file, chunks it, and stores its chunks as data blobs."""

from __future__ import annotations

import errno
import os
import stat
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

from cairn.core.fsread import open_dir_for_reading, open_for_reading
from cairn.model.chunker import Chunker
from cairn.ops.fsmeta import read_xattrs
from cairn.repo.layout import DATA_BLOB
from cairn.repo.writer import Writer

_WILLNEED: int | None = getattr(os, "POSIX_FADV_WILLNEED", None)
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


class BackupCancelled(Exception):
    """The backup is being abandoned (an error elsewhere, or an interrupt)."""


@dataclass
class FileResult:
    content: list[bytes] = field(default_factory=list)
    size: int = 0
    blobs_added: int = 0
    bytes_added: int = 0
    bytes_stored: int = 0
    changed_while_reading: bool = False
    inode: int = 0
    mtime: int = 0
    ctime: int = 0
    # the file's extended attributes, read from its descriptor (FileSaver ``xattrs``)
    xattrs: list[tuple[bytes, bytes]] | None = None

    def as_tuple(self) -> tuple[Any, ...]:
        """Its fields in order (``FileResult(*t)`` makes it again; dataclasses.astuple would
        copy the content list too, and slowly)."""
        return (
            self.content,
            self.size,
            self.blobs_added,
            self.bytes_added,
            self.bytes_stored,
            self.changed_while_reading,
            self.inode,
            self.mtime,
            self.ctime,
            self.xattrs,
        )


class DirHandle:
    """An open directory shared by the walk and the files of it waiting to be read: closed
    when the last of them lets it go. Entries are opened relative to it, so a path of any
    length (beyond PATH_MAX) can be read."""

    __slots__ = ("_open", "_refs", "fd")

    def __init__(self, fd: int, open_dirs: OpenDirs) -> None:
        self.fd = fd
        self._refs = 1
        self._open = open_dirs

    def hold(self) -> DirHandle:
        with self._open.lock:
            self._refs += 1
        return self

    def release(self) -> None:
        with self._open.lock:
            self._refs -= 1
            if self._refs:
                return
            self._open.handles.discard(self)
        os.close(self.fd)


class OpenDirs:
    """The directories a walk holds open: those left open when it is abandoned (files that
    were never read) are closed by ``close_all``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handles: set[DirHandle] = set()

    def open(self, name: bytes, parent: DirHandle | None = None) -> DirHandle:
        """The directory ``name`` (in ``parent``, or a path), never through a symlink."""
        fd = open_dir_for_reading(name, None if parent is None else parent.fd)
        handle = DirHandle(fd, self)
        with self.lock:
            self.handles.add(handle)
        return handle

    def close_all(self) -> None:
        with self.lock:
            handles, self.handles = self.handles, set()
        for h in handles:
            os.close(h.fd)


# a file to read: its path (for messages), what the walk saw, and the directory it is in with
# its name there (None: opened by its path, a path given on the command line)
FileItem = tuple[bytes, "os.stat_result | Seen", "tuple[DirHandle, bytes] | None"]


class Seen(NamedTuple):
    """What reading a file needs of the walk's lstat (a reading process is sent this, a few
    integers, rather than the whole status, which takes far longer to pickle)."""

    st_size: int
    st_ino: int
    st_dev: int
    st_mtime_ns: int
    st_ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Seen:
        return cls(st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns)


# a file opened ahead of reading: its descriptor, its status, and the bytes taken at once
Ahead = tuple[int, os.stat_result, bytes | None] | None


class FileSaver:
    """Thread-safe: each thread gets its own chunker (FastCDC state is not shareable).

    With ``xattrs``, every file read by ``save_files`` has its extended attributes read too,
    from its open descriptor, into its result."""

    def __init__(self, writer: Writer, progress_bytes=None, xattrs: bool = False) -> None:  # type: ignore[no-untyped-def]
        self._writer = writer
        self._xattrs = xattrs
        self._params = writer.repo.config.chunker
        self._local = threading.local()
        self._progress_bytes = progress_bytes
        self.cancelled = threading.Event()
        self._ahead = threading.BoundedSemaphore(OPEN_AHEAD)

    def _chunker(self) -> Chunker:
        c = getattr(self._local, "chunker", None)
        if c is None:
            c = self._local.chunker = Chunker(self._params)
        return c

    def save_stream(self, stream: BinaryIO | int, size_hint: int | None = None) -> FileResult:
        result = FileResult()
        for chunk in self._chunker().chunks(stream, size_hint):
            if self.cancelled.is_set():
                raise BackupCancelled()
            saved = self._writer.save_blob(DATA_BLOB, chunk)
            result.content.append(saved.id)
            result.size += len(chunk)
            if saved.new:
                result.blobs_added += 1
                result.bytes_added += len(chunk)
                result.bytes_stored += saved.stored
            if self._progress_bytes is not None:
                self._progress_bytes(len(chunk))
        return result

    def save_files(self, items: list[FileItem]) -> list[FileResult | OSError]:
        """Several files in a row; an unreadable one yields its OSError, the others go on.

        The files of a batch are all opened first and the kernel is told each will be read
        (``POSIX_FADV_WILLNEED``), so that on a cold cache their reads are queued to the disk
        together rather than waited for one after another; then each is read in turn.

        A file smaller than the chunker's minimum chunk size is one chunk whatever its
        content: it is read whole in one call, without the chunker, and its blob is stored
        with those of the files read before it, a group at a time (``Writer.save_blobs``: one
        lock and one pass over the open pack for the group, not one per file)."""
        out: list[FileResult | OSError | None] = [None] * len(items)
        opened = self._open_all(items, out) if len(items) > 1 else [None] * len(items)
        group: list[tuple[int, FileResult, bytes]] = []
        group_bytes = 0
        try:
            for k, (path, before, where) in enumerate(items):
                if out[k] is not None:
                    continue  # it could not be opened
                if self.cancelled.is_set():
                    raise BackupCancelled()
                ahead = opened[k]
                head = None
                if ahead is not None:
                    opened[k] = None  # closed by what reads it, whatever happens
                    self._ahead.release()
                try:
                    if ahead is not None:
                        fd, st, head = ahead
                    else:
                        fd, st = self._open(path, before, where)
                    xattrs = self._fd_xattrs(fd) if self._xattrs else None
                    if before.st_size < self._params.min_size:
                        read = self._read_small(fd, before, head)
                        if isinstance(read, FileResult):
                            read.xattrs = xattrs
                            out[k] = read
                            continue
                        read[0].xattrs = xattrs
                        group.append((k, read[0], read[1]))
                        group_bytes += len(read[1])
                        if group_bytes >= GROUP_BYTES:
                            self._store(group, out)
                            group, group_bytes = [], 0
                        continue
                    result = self._save_open(fd, st, before)
                    result.xattrs = xattrs
                    out[k] = result
                except OSError as e:
                    out[k] = e
        finally:
            self._close_ahead(opened)
        self._store(group, out)
        return out  # type: ignore[return-value]  # every slot is filled

    @staticmethod
    def _fd_xattrs(fd: int) -> list[tuple[bytes, bytes]]:
        """The extended attributes of the file open as ``fd``; closed if they cannot be read."""
        try:
            return read_xattrs(fd)
        except BaseException:
            os.close(fd)
            raise

    def _open_all(
        self, items: list[FileItem], out: list[FileResult | OSError | None]
    ) -> list[Ahead]:
        """The files of a batch opened (one that cannot be is given its OSError in ``out``);
        a small one's content taken at once if the page cache holds it all, and every other
        announced to the kernel as about to be read. Once the backup's reading threads hold
        ``OPEN_AHEAD`` files open this way, the rest are left to be opened as they are read."""
        opened: list[Ahead] = [None] * len(items)
        small = self._params.min_size
        k = 0
        try:
            for k, (path, before, where) in enumerate(items):  # k: see below
                if not self._ahead.acquire(blocking=False):
                    break
                try:
                    fd, st = self._open(path, before, where)
                except OSError as e:
                    self._ahead.release()
                    out[k] = e
                    continue
                size = before.st_size
                head = cached_head(fd, size) if 0 < size < small else None
                opened[k] = (fd, st, head)
                if _WILLNEED is not None and size > (len(head) if head is not None else 0):
                    try:
                        os.posix_fadvise(fd, 0, 0, _WILLNEED)
                    except OSError:
                        pass  # only advice: a file system may not take it
        except BaseException:
            self._close_ahead(opened)
            # the files after the k-th were never opened: their directories are let go here
            for _, _, where in items[k + 1 :]:
                if where is not None:
                    where[0].release()
            raise
        return opened

    def _close_ahead(self, opened: list[Ahead]) -> None:
        for ahead in opened:
            if ahead is not None:
                os.close(ahead[0])
                self._ahead.release()

    def _store(
        self, group: list[tuple[int, FileResult, bytes]], out: list[FileResult | OSError | None]
    ) -> None:
        """Stores the blobs of small files read whole (an empty file has none)."""
        full = [g for g in group if g[2]]
        saved = self._writer.save_blobs(DATA_BLOB, [data for _, _, data in full])
        total = 0
        for (_, result, data), s in zip(full, saved, strict=True):
            result.content.append(s.id)
            if s.new:
                result.blobs_added = 1
                result.bytes_added = len(data)
                result.bytes_stored = s.stored
            total += len(data)
        for k, result, _ in group:
            out[k] = result
        if total and self._progress_bytes is not None:
            self._progress_bytes(total)

    def _open(
        self, path: bytes, before: os.stat_result | Seen, where: tuple[DirHandle, bytes] | None
    ) -> tuple[int, os.stat_result]:
        """The file, open, and its status, once it is known to be the regular file the walk
        saw (its device and inode: opened by its path, whatever the path now leads through,
        it is read only if it is that file). The directory ``where`` names is let go once the
        file is open (or cannot be)."""
        if where is None:
            fd = open_for_reading(path)
        else:
            try:
                fd = open_for_reading(where[1], 0, where[0].fd)
            finally:
                where[0].release()
        try:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_ino != before.st_ino
                or st.st_dev != before.st_dev
            ):
                raise OSError(errno.ESTALE, "file was replaced before it could be read", path)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _read_small(
        self, fd: int, before: os.stat_result | Seen, head: bytes | None = None
    ) -> FileResult | tuple[FileResult, bytes]:
        """A file the walk saw smaller than the minimum chunk size, open as ``fd`` (closed
        here), ``head`` its first bytes if they were taken already: its content, read whole,
        with its result still to be given the blob; or, if it has grown past that size
        meanwhile, its result read through the chunker like any other.

        Once as many bytes are read as the walk saw, the file's status is asked rather than
        one more read made to find its end: if it is that size still, that is all of it."""
        try:
            limit = self._params.min_size
            parts: list[bytes] = [head] if head else []
            n = len(head) if head else 0
            after: os.stat_result | None = None
            while n < limit:
                if n == before.st_size:
                    after = os.fstat(fd)
                    if after.st_size == n:
                        break
                part = os.pread(fd, limit - n, n)
                if not part:
                    break
                parts.append(part)
                n += len(part)
                after = None
            if n >= limit:  # it grew: read it again, from the start, in chunks
                os.lseek(fd, 0, os.SEEK_SET)
                result = self.save_stream(fd)
                data = None
                after = None
            else:
                result = FileResult(size=n)
                data = parts[0] if len(parts) == 1 else b"".join(parts)
            if after is None:
                after = os.fstat(fd)
        finally:
            os.close(fd)
        _finish(result, before, after)
        return result if data is None else (result, data)

    def _save_open(self, fd: int, st: os.stat_result, before: os.stat_result | Seen) -> FileResult:
        """A file open as ``fd`` (closed here), read through the chunker."""
        try:
            result = self.save_stream(fd, st.st_size)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        _finish(result, before, after)
        return result


def cached_head(fd: int, size: int) -> bytes | None:
    """Up to ``size`` bytes from the start of the file open as ``fd``, those the page cache
    holds, read without waiting for the disk (``RWF_NOWAIT``); None if it holds none of them,
    or where a read cannot be asked not to wait. On a warm cache this is the whole file, in
    the one call that would have asked the kernel to read it ahead. Never raises: a file that
    cannot be read fails where it is read (its own error, the batch going on)."""
    global _NOWAIT
    if _NOWAIT is None:
        return None
    buf = bytearray(size)
    try:
        n = os.preadv(fd, [buf], 0, _NOWAIT)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            _NOWAIT = None  # not on this kernel or file system: read as before
        return None
    return bytes(buf) if n == size else bytes(buf[:n]) if n else None


# files a backup's reading threads hold open ahead of reading them, at most (descriptors: the
# walk holds its directories' too, and the default limit is 1,024)
OPEN_AHEAD = 256
# small files read whole are stored in groups of about this many bytes (memory: a group's
# contents and their framed copies, on each reading thread)
GROUP_BYTES = 1 << 20


def _finish(result: FileResult, before: os.stat_result | Seen, after: os.stat_result) -> None:
    """What the file was once read, and whether it changed from what the walk saw."""
    result.inode = after.st_ino
    result.mtime = after.st_mtime_ns
    result.ctime = after.st_ctime_ns
    result.changed_while_reading = (
        after.st_mtime_ns != before.st_mtime_ns
        or after.st_size != before.st_size
        or after.st_ctime_ns != before.st_ctime_ns
        or result.size != before.st_size
    )
