"""The file operations of the local-directory store: an object is written to a temporary file
beside it (``.tmp-*``, which listings hide), fsynced, then put in place under its name, either
only if the name is free (a hard link, which fails if it exists: write-once, like S3's
If-None-Match) or over what is there (a rename). Either way a reader sees the old object or
the whole new one, never part of one."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable

from cairn.core.errors import StorageError
from cairn.storage.base import Content, content_chunks

TMP_PREFIX = ".tmp-"
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_temp(dir_fd: int, data: Content, mode: int = 0o600) -> tuple[str, os.stat_result]:
    """A new fsynced temporary file in ``dir_fd`` holding ``data``: its name and status (which
    the file keeps when it is linked or renamed into place). ``mode``: as os.open's (the
    umask applies): a repository's objects are private, a mirror's are the user's files."""

    def fill(fd: int) -> None:
        for view in content_chunks(data):
            while view:
                n = os.write(fd, view)
                view = view[n:]

    return _temp(dir_fd, mode, fill)


def copy_temp(dir_fd: int, src_fd: int, mode: int = 0o600) -> tuple[str, os.stat_result]:
    """As ``write_temp``, with the content of the open file ``src_fd`` (copied in the kernel
    where the filesystem can: ``copy_file_range``)."""

    def fill(fd: int) -> None:
        size = os.fstat(src_fd).st_size
        done = 0
        while done < size:
            try:
                n = os.copy_file_range(src_fd, fd, size - done, done, done)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                n = _copy_by_reading(src_fd, fd, done, size - done)
            if not n:
                break  # the source shrank meanwhile
            done += n

    return _temp(dir_fd, mode, fill)


def _temp(dir_fd: int, mode: int, fill: Callable[[int], None]) -> tuple[str, os.stat_result]:
    """A new temporary file in ``dir_fd``, filled by ``fill(fd)`` and fsynced; removed again
    if that fails."""
    tmp = f"{TMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, _TMP_FLAGS, mode, dir_fd=dir_fd)
    try:
        fill(fd)
        os.fsync(fd)
        return tmp, os.fstat(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    finally:
        os.close(fd)


def _copy_by_reading(src_fd: int, fd: int, offset: int, length: int) -> int:
    data = os.pread(src_fd, min(length, 1 << 20), offset)
    view = memoryview(data)
    while view:
        view = view[os.pwrite(fd, view, offset + len(data) - len(view)) :]
    return len(data)


def create_once(dir_fd: int, tmp: str, name: str) -> bool:
    """Puts ``tmp`` in place as ``name`` (both in ``dir_fd``) unless ``name`` exists: whether
    it did. ``tmp`` is gone afterwards. On a filesystem without hard links it looks before it
    renames, which two writers racing for the name can both pass."""
    try:
        os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        created = True
    except FileExistsError:
        created = False
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return True
        created = False
    os.unlink(tmp, dir_fd=dir_fd)
    return created


def replace(dir_fd: int, tmp: str, name: str) -> None:
    """Puts ``tmp`` in place as ``name``, over what is there (a symbolic link itself, never
    its target); ``tmp`` is removed if that fails."""
    try:
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def write_error(name: str, e: OSError) -> StorageError:
    if e.errno == errno.ENOSPC:
        return StorageError(f"cannot write {name}: no space left on device")
    return StorageError(f"cannot write {name}: {e.strerror}")
