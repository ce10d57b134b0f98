"""Creating entries under a restore target without ever leaving it.

Every path is resolved one component at a time relative to an open directory descriptor, with
O_NOFOLLOW|O_DIRECTORY, and every name is checked (no '/', '.', '..', NUL, empty). A symlink
planted earlier in the restore (or already in the target) is never followed: it is replaced.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Sequence

from cairn.model.node import is_safe_name

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


class UnsafeName(OSError):
    def __init__(self, name: bytes) -> None:
        super().__init__(errno.EINVAL, f"refusing unsafe name {name!r}")


def check_name(name: bytes) -> None:
    if not is_safe_name(name):
        raise UnsafeName(name)


class Target:
    """A restore target directory, held open by descriptor."""

    CACHED_DIRS = 64  # per thread

    def __init__(self, path: str | bytes) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = os.fsencode(path)
        self.fd = os.open(path, _DIR_FLAGS & ~os.O_NOFOLLOW)
        # a file created in a set-group-ID directory takes the directory's group; a directory
        # made in one inherits the bit
        self.setgid_seen = bool(os.fstat(self.fd).st_mode & stat.S_ISGID)
        self._local = threading.local()
        self._caches: list[OrderedDict[tuple[bytes, ...], int]] = []
        self._caches_lock = threading.Lock()

    def close(self) -> None:
        with self._caches_lock:
            for cache in self._caches:
                for fd in cache.values():
                    os.close(fd)
                cache.clear()
        os.close(self.fd)

    def dir_fd(self, parts: tuple[bytes, ...]) -> int:
        """A descriptor of the directory at ``parts``, from this thread's small cache: the
        caller must not close it. Each directory is opened once per thread, not once per file."""
        if not parts:
            return self.fd
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = OrderedDict()
            with self._caches_lock:
                self._caches.append(cache)
        fd = cache.get(parts)
        if fd is not None:
            cache.move_to_end(parts)
            return fd
        # from the deepest directory on the way that is open, one level at a time (a loop, not
        # recursion: the tree may be thousands of levels deep)
        known = len(parts) - 1
        while known and parts[:known] not in cache:
            known -= 1
        fd = self.fd
        if known:
            fd = cache[parts[:known]]
            cache.move_to_end(parts[:known])
        for depth in range(known + 1, len(parts) + 1):
            check_name(parts[depth - 1])
            fd = os.open(parts[depth - 1], _DIR_FLAGS, dir_fd=fd)
            cache[parts[:depth]] = fd
            while len(cache) > self.CACHED_DIRS:
                os.close(cache.popitem(last=False)[1])
        return fd

    def open_dir(self, parts: Sequence[bytes]) -> int:
        """A new descriptor for the directory at ``parts`` (never through a symlink)."""
        fd = os.dup(self.fd)
        try:
            for part in parts:
                check_name(part)
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def make_dir(self, parent_fd: int, name: bytes) -> None:
        """Ensures ``name`` is a real directory (not a symlink) inside ``parent_fd``."""
        check_name(name)
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
            return
        except FileExistsError:
            pass
        # the entry itself (a symlink is not followed), changed through its descriptor: one
        # swapped for a symlink meanwhile is never what gets the new mode
        fd = os.open(name, _PATH_FLAGS, dir_fd=parent_fd)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                if st.st_mode & 0o700 != 0o700:
                    os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) | 0o700)
                if st.st_mode & stat.S_ISGID:
                    self.setgid_seen = True
                return
        finally:
            os.close(fd)
        os.unlink(name, dir_fd=parent_fd)
        os.mkdir(name, 0o700, dir_fd=parent_fd)

    def clear(self, parent_fd: int, name: bytes) -> None:
        """Removes a non-directory entry so a new one can be created in its place."""
        check_name(name)
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a directory is in the way", name)
        os.unlink(name, dir_fd=parent_fd)

    def create_file(self, parent_fd: int, name: bytes, mode: int = 0o600) -> int:
        """A new file open for writing, created with ``mode`` (less the umask)."""
        check_name(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, mode, dir_fd=parent_fd)
        except FileExistsError:
            self.clear(parent_fd, name)  # something is in the way: replace it, never follow it
            return os.open(name, flags, mode, dir_fd=parent_fd)

    def reopen_file(self, parent_fd: int, name: bytes) -> int:
        """Opens a file this restore created (and closed) for writing again: a regular file
        only, never through a symlink, and without blocking on a FIFO put in its place."""
        check_name(name)
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        fd = os.open(name, flags, dir_fd=parent_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EEXIST, "no longer the file this restore created", name)
        return fd

    def open_file(self, parent_fd: int, name: bytes) -> int:
        """Opens a restored file for reading without changing its restored access time."""
        check_name(name)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags | _NOATIME, dir_fd=parent_fd)
        except PermissionError:
            return os.open(name, flags, dir_fd=parent_fd)
