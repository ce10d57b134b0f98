"""Applying a node's metadata to a restored entry: owner, mode, xattrs, then times."""

from __future__ import annotations

import errno
import grp
import os
import pwd
from functools import lru_cache

from cairn.model.node import SYMLINK, Node

IS_ROOT = os.geteuid() == 0


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


def apply_to_fd(fd: int, node: Node) -> list[str]:
    """Metadata of a regular file or directory open as ``fd``; returns problems found."""
    problems: list[str] = []
    if IS_ROOT:
        uid, gid = owner_of(node)
        os.fchown(fd, uid, gid)
    os.fchmod(fd, node.mode)
    for key, value in node.xattrs:
        try:
            os.setxattr(fd, key, value)
        except OSError as e:
            problems.append(f"xattr {key.decode(errors='replace')}: {e.strerror}")
    os.utime(fd, ns=(node.atime, node.mtime))
    return problems


def apply_by_name(parent_fd: int, name: bytes, node: Node) -> list[str]:
    """Metadata of a symlink, FIFO or device node named ``name`` in ``parent_fd``."""
    problems: list[str] = []
    if IS_ROOT:
        uid, gid = owner_of(node)
        os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
    if node.type != SYMLINK:
        os.chmod(name, node.mode, dir_fd=parent_fd)
    proc_path = f"/proc/self/fd/{parent_fd}/".encode() + name
    for key, value in node.xattrs:
        try:
            os.setxattr(proc_path, key, value, follow_symlinks=False)
        except OSError as e:
            if not (node.type == SYMLINK and e.errno == errno.EPERM):
                problems.append(f"xattr {key.decode(errors='replace')}: {e.strerror}")
    os.utime(name, ns=(node.atime, node.mtime), dir_fd=parent_fd, follow_symlinks=False)
    return problems
