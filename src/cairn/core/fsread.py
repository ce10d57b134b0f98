"""Opening files and directories for reading without moving their access time, where allowed
(O_NOATIME needs the file's owner or CAP_FOWNER), and without following a symlink.

Light on imports: the backup's scanner opens directories this way in a process of its own
(ops/backup/scan_child.py), whose start-up is part of every first backup.
"""

from __future__ import annotations

import errno
import os

_NOATIME = getattr(os, "O_NOATIME", 0)


def open_dir_for_reading(path: bytes, dir_fd: int | None = None) -> int:
    return open_for_reading(path, os.O_DIRECTORY, dir_fd)


def open_for_reading(path: bytes, extra_flags: int = 0, dir_fd: int | None = None) -> int:
    """Opens without following symlinks and, where allowed, without touching the atime;
    ``path`` is relative to the directory ``dir_fd`` when one is given (a name: no length
    limit on where it is)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | extra_flags
    try:
        return os.open(path, flags | _NOATIME, dir_fd=dir_fd)
    except PermissionError:
        if not _NOATIME:
            raise
        return os.open(path, flags, dir_fd=dir_fd)  # O_NOATIME needs ownership or CAP_FOWNER
    except OSError as e:
        if e.errno == errno.EINVAL and _NOATIME:
            return os.open(path, flags, dir_fd=dir_fd)
        raise
