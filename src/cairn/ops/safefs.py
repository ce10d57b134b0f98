"""Creating entries under a restore target without ever leaving it.

Every path is resolved one component at a time relative to an open directory descriptor, with
O_NOFOLLOW|O_DIRECTORY, and every name is checked (no '/', '.', '..', NUL, empty). A symlink
planted earlier in the restore (or already in the target) is never followed: it is replaced.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from cairn.model.node import is_safe_name

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


class UnsafeName(OSError):
    def __init__(self, name: bytes) -> None:
        super().__init__(errno.EINVAL, f"refusing unsafe name {name!r}")


def check_name(name: bytes) -> None:
    if not is_safe_name(name):
        raise UnsafeName(name)


class Target:
    """A restore target directory, held open by descriptor."""

    def __init__(self, path: str | bytes) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = os.fsencode(path)
        self.fd = os.open(path, _DIR_FLAGS & ~os.O_NOFOLLOW)

    def close(self) -> None:
        os.close(self.fd)

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
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode) | 0o700, dir_fd=parent_fd)
            return
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

    def create_file(self, parent_fd: int, name: bytes) -> int:
        self.clear(parent_fd, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(name, flags, 0o600, dir_fd=parent_fd)

    def open_file(self, parent_fd: int, name: bytes) -> int:
        """Opens a restored file for reading without changing its restored access time."""
        check_name(name)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags | _NOATIME, dir_fd=parent_fd)
        except PermissionError:
            return os.open(name, flags, dir_fd=parent_fd)
