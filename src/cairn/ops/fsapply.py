"""Applying a node's metadata to a restored entry: owner, mode, xattrs, then times."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from functools import lru_cache

from cairn.model.node import BLOCKDEV, CHARDEV, FIFO, SOCKET, SYMLINK, Node

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_IFMT = {
    SYMLINK: stat.S_IFLNK,
    FIFO: stat.S_IFIFO,
    CHARDEV: stat.S_IFCHR,
    BLOCKDEV: stat.S_IFBLK,
    SOCKET: stat.S_IFSOCK,
}

IS_ROOT = os.geteuid() == 0
_CREATOR = (os.geteuid(), os.getegid())  # the owner of the files this process creates


@lru_cache(maxsize=4096)
def _uid_for(user: str | None, uid: int) -> int:
    if user:
        try:
            return pwd.getpwnam(user).pw_uid
        except KeyError:
            pass
    return uid


@lru_cache(maxsize=4096)
def _gid_for(group: str | None, gid: int) -> int:
    if group:
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            pass
    return gid


def owner_of(node: Node) -> tuple[int, int]:
    """Names win when they exist here; otherwise the numeric ids."""
    return _uid_for(node.user, node.uid), _gid_for(node.group, node.gid)


def process_umask() -> int:
    """The file mode creation mask, read without changing it (other threads may be creating
    files)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o077)
    os.umask(old)
    return old


def creation_mode(node: Node, umask: int) -> int | None:
    """The mode to create a file with so that it needs no chmod afterwards: its own, unless it
    has bits the umask takes away or special bits (which a later chown would clear). None if
    it needs one."""
    mode = node.mode & 0o7777
    if mode & (0o7000 | umask):
        return None
    return mode


def owned_from_creation(node: Node) -> bool:
    """Whether a new file, made by this process in a directory without the set-group-ID bit,
    already has the node's owner and group (as root: when they are root's own)."""
    return not IS_ROOT or owner_of(node) == _CREATOR


def apply_to_fd(fd: int, node: Node, *, owner: bool = True, mode: bool = True) -> list[str]:
    """Metadata of a regular file or directory open as ``fd``; returns problems found.
    ``owner=False`` and ``mode=False`` skip what the file was created with."""
    problems: list[str] = []
    if IS_ROOT and owner:
        uid, gid = owner_of(node)
        os.fchown(fd, uid, gid)
    if mode:
        os.fchmod(fd, node.mode)
    for key, value in node.xattrs:
        try:
            os.setxattr(fd, key, value)
        except OSError as e:
            problems.append(f"xattr {key.decode(errors='replace')}: {e.strerror}")
    os.utime(fd, ns=(node.atime, node.mtime))
    return problems


def apply_by_name(parent_fd: int, name: bytes, node: Node) -> list[str]:
    """Metadata of a symlink, FIFO or device node named ``name`` in ``parent_fd``.

    The entry is opened once, with O_PATH|O_NOFOLLOW, and everything is applied through that
    descriptor: whoever can write into the target cannot swap the entry for a symlink and have
    the metadata land on the file it points to. An entry that is no longer of the node's type
    (replaced since it was created) is left alone and reported."""
    try:
        fd = os.open(name, _PATH_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        return [f"cannot apply metadata: {e.strerror}"]
    try:
        if stat.S_IFMT(os.fstat(fd).st_mode) != _IFMT.get(node.type):
            return [f"replaced while being restored (no longer a {node.type}), left alone"]
        path = f"/proc/self/fd/{fd}"  # the entry itself, even a symlink: never what it points to
        problems: list[str] = []
        if IS_ROOT:
            uid, gid = owner_of(node)
            os.chown(path, uid, gid)
        if node.type != SYMLINK:
            os.chmod(path, node.mode)
        for key, value in node.xattrs:
            try:
                os.setxattr(path, key, value)
            except OSError as e:
                if not (node.type == SYMLINK and e.errno == errno.EPERM):
                    problems.append(f"xattr {key.decode(errors='replace')}: {e.strerror}")
        os.utime(path, ns=(node.atime, node.mtime))
        return problems
    finally:
        os.close(fd)
