"""Reading a filesystem entry's metadata into a tree node."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from functools import lru_cache

from cairn.model.node import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node

_TYPES = {
    stat.S_IFREG: FILE,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFIFO: FIFO,
    stat.S_IFCHR: CHARDEV,
    stat.S_IFBLK: BLOCKDEV,
    stat.S_IFSOCK: SOCKET,
}
KINDS = frozenset(_TYPES)  # the file types (stat.S_IFMT) a node can record
PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
_NO_XATTRS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM, errno.EACCES}


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def read_xattrs(path: bytes | int) -> list[tuple[bytes, bytes]]:
    """The extended attributes of the entry at ``path`` (not followed if a symlink), or of
    the file open as the descriptor ``path``, sorted by name."""
    follow = isinstance(path, int)  # (a descriptor is the file itself: nothing to follow)
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as e:
        if e.errno in _NO_XATTRS:
            return []
        raise
    out = []
    for name in names:
        try:
            value = os.getxattr(path, name, follow_symlinks=follow)
        except OSError as e:
            if e.errno in _NO_XATTRS:
                continue
            raise
        out.append((os.fsencode(name), value))
    out.sort()
    return out


def node_from_stat(
    name: bytes, path: bytes, st: os.stat_result, dir_fd: int | None = None, xattrs: bool = True
) -> Node:
    """Metadata of one entry (no content). Raises OSError if xattrs or the link can't be read.
    With ``dir_fd``, the entry is ``name`` in that open directory (``path`` only names it):
    read at any depth, beyond PATH_MAX. Without ``xattrs``, the extended attributes are left
    to whoever reads the file (from its descriptor, a cheaper call than by its path)."""
    kind = _TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        raise OSError(errno.EINVAL, "unsupported file type", path)
    node = Node(
        name=name,
        type=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
        mtime=st.st_mtime_ns,
        atime=st.st_atime_ns,
        ctime=st.st_ctime_ns,
        inode=st.st_ino,
        dev=st.st_dev,
        links=st.st_nlink,
    )
    if kind == FILE:
        node.size = st.st_size
    elif kind == SYMLINK:
        node.target = os.readlink(path) if dir_fd is None else os.readlink(name, dir_fd=dir_fd)
    elif kind in (CHARDEV, BLOCKDEV):
        node.rdev = st.st_rdev
    if not xattrs:
        return node
    # the xattr calls take no directory descriptor: by the path where it fits (a procfs
    # lookup costs more), else the entry through the directory's /proc link (the name itself
    # is not followed)
    if dir_fd is not None and len(path) >= PATH_MAX:
        path = b"/proc/self/fd/%d/%s" % (dir_fd, name)
    node.xattrs = read_xattrs(path)
    return node
