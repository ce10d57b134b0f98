"""What a pull does to the local tree, entry by entry, never outside its target: comparing an
entry with what is there, giving it the manifest's metadata, and removing what the manifest no
longer has. Every name is reached from an open directory descriptor (``cairn.ops.safefs``),
never through a symbolic link, and metadata goes through ``cairn.ops.fsapply``, as a restore's.

A mirror keeps no access time: a pulled entry gets its modification time as its access time.
Extended attributes the manifest does not have are removed from what a pull keeps, but those
of the ``security.`` namespace (labels the local system sets, not the mirror's to remove).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

import blake3

from cairn.model.node import BLOCKDEV, CHARDEV, FIFO, SYMLINK, Node
from cairn.ops.fsapply import IS_ROOT, apply_by_name, apply_to_fd, owner_of
from cairn.ops.mirror.manifest import Entry

TMP_PREFIX = b".cairn-pull-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_SYSTEM_XATTRS = b"security."
_READ = 1 << 20
_IFMT = {
    SYMLINK: stat.S_IFLNK,
    FIFO: stat.S_IFIFO,
    CHARDEV: stat.S_IFCHR,
    BLOCKDEV: stat.S_IFBLK,
}


def as_node(entry: Entry) -> Node:
    """The entry as the node ``fsapply`` applies."""
    return Node(
        name=entry.path.rpartition(b"/")[2],
        type=entry.type,
        mode=entry.mode & 0o7777,
        uid=entry.uid,
        gid=entry.gid,
        user=entry.user,
        group=entry.group,
        mtime=entry.mtime,
        atime=entry.mtime,
        size=entry.size,
        target=entry.target,
        rdev=entry.rdev,
        xattrs=entry.xattrs,
    )


def temp_name() -> bytes:
    return TMP_PREFIX + secrets.token_hex(8).encode()


def _xattrs_of(fd_or_path: int | str) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    try:
        names = os.listxattr(fd_or_path)
    except OSError:
        return out
    for name in names:
        with contextlib.suppress(OSError):
            out[os.fsencode(name)] = os.getxattr(fd_or_path, name)
    return out


def _extra_xattrs(have: dict[bytes, bytes], node: Node) -> list[bytes]:
    wanted = {k for k, _ in node.xattrs}
    return [k for k in have if k not in wanted and not k.startswith(_SYSTEM_XATTRS)]


def meta_differs(st: os.stat_result, have: dict[bytes, bytes], node: Node) -> bool:
    """Whether an entry (its ``lstat`` and xattrs) lacks some of ``node``'s metadata. Owners
    count as root only: anyone else gets the files as their own."""
    if node.type != SYMLINK and stat.S_IMODE(st.st_mode) != node.mode:
        return True
    if IS_ROOT and (st.st_uid, st.st_gid) != owner_of(node):
        return True
    if st.st_mtime_ns != node.mtime:
        return True
    return any(have.get(k) != v for k, v in node.xattrs) or bool(_extra_xattrs(have, node))


def sync_meta_fd(fd: int, node: Node, *, force: bool = False) -> list[str]:
    """Gives the file or directory open as ``fd`` ``node``'s metadata if it lacks some (or
    ``force``); returns the problems found."""
    have = _xattrs_of(fd)
    if not force and not meta_differs(os.fstat(fd), have, node):
        return []
    problems = apply_to_fd(fd, node)
    for name in _extra_xattrs(have, node):
        try:
            os.removexattr(fd, name)
        except OSError as e:
            problems.append(f"xattr {name.decode(errors='replace')}: {e.strerror}")
    return problems


def special_is_current(parent_fd: int, name: bytes, node: Node) -> bool:
    """Whether a symlink, FIFO or device node ``name`` is there as ``node`` says, metadata and
    all (then a pull leaves it be)."""
    try:
        fd = os.open(name, _PATH_FLAGS, dir_fd=parent_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if stat.S_IFMT(st.st_mode) != _IFMT.get(node.type):
            return False
        if node.type == SYMLINK and os.readlink(name, dir_fd=parent_fd) != node.target:
            return False
        if node.type in (CHARDEV, BLOCKDEV) and st.st_rdev != node.rdev:
            return False
        have = {} if node.type == SYMLINK else _xattrs_of(f"/proc/self/fd/{fd}")
        return not meta_differs(st, have, node)
    finally:
        os.close(fd)


def make_special(parent_fd: int, name: bytes, node: Node) -> list[str]:
    """A symlink, FIFO or device node made under a temporary name with its metadata, then
    renamed over ``name`` (which must not be a directory); returns the problems found."""
    tmp = temp_name()
    try:
        if node.type == SYMLINK:
            os.symlink(node.target or b"", tmp, dir_fd=parent_fd)
        elif node.type == FIFO:
            os.mkfifo(tmp, 0o600, dir_fd=parent_fd)
        else:
            kind = stat.S_IFCHR if node.type == CHARDEV else stat.S_IFBLK
            os.mknod(tmp, kind | 0o600, node.rdev, dir_fd=parent_fd)
        problems = apply_by_name(parent_fd, tmp, node)
        replace(parent_fd, tmp, name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=parent_fd)
        raise
    return problems


def replace(parent_fd: int, tmp: bytes, name: bytes) -> None:
    """Renames ``tmp`` over ``name`` in one directory; a directory in the way is an error
    (a pull removes one only with ``delete``)."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a directory is in the way")
    os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)


def hash_local(fd: int) -> bytes:
    hasher = blake3.blake3()
    while chunk := os.read(fd, _READ):
        hasher.update(chunk)
    return hasher.digest()


def remove_tree(parent_fd: int, name: bytes) -> int:
    """Removes ``name`` from ``parent_fd``, everything below it if it is a directory (reached
    by descriptors, never through a link, without recursion); the count of entries removed."""
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return 1
    removed = 0
    # per directory being emptied: its descriptor, its parent's, its name, the names left in
    # it; a parent stays open below its child
    stack = [(*_open_listed(parent_fd, name), parent_fd, name)]
    try:
        while stack:
            fd, left, up, dname = stack[-1]
            while left:
                child = left.pop()
                if stat.S_ISDIR(os.stat(child, dir_fd=fd, follow_symlinks=False).st_mode):
                    stack.append((*_open_listed(fd, child), fd, child))
                    break
                os.unlink(child, dir_fd=fd)
                removed += 1
            else:
                stack.pop()
                os.close(fd)
                os.rmdir(dname, dir_fd=up)
                removed += 1
    finally:
        for fd, _left, _up, _name in stack:
            os.close(fd)
    return removed


def _open_listed(parent_fd: int, name: bytes) -> tuple[int, list[bytes]]:
    """A directory to empty, open, and its names; made writable and searchable first if it
    is one of this user's own that is not."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        pfd = os.open(name, _PATH_FLAGS, dir_fd=parent_fd)
        try:
            os.chmod(f"/proc/self/fd/{pfd}", 0o700)
        finally:
            os.close(pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o700 != 0o700:
            os.fchmod(fd, mode | 0o700)
        with os.scandir(fd) as it:
            return fd, [os.fsencode(e.name) for e in it]
    except BaseException:
        os.close(fd)
        raise
