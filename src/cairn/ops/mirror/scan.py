"""The source of a push: every entry below a directory as a manifest entry (its metadata read
by ops/fsmeta), hard links grouped, and file contents hashed with BLAKE3, a file that changes
while it is read reported rather than given a hash its object would not match."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import blake3

from cairn.model.node import FILE, Node
from cairn.ops.fsmeta import node_from_stat
from cairn.ops.mirror.manifest import Entry

_READ = 1 << 20
# the xattrs of every entry that has none (most): one empty list, not one each, never changed
_NO_XATTRS: list[tuple[bytes, bytes]] = []


class FileChanged(OSError):
    """A file whose size or times changed while it was read."""


@dataclass(slots=True)
class Scanned:
    """An entry with what the state file keeps to trust it next time unread."""

    entry: Entry
    inode: int
    dev: int
    ctime: int


@dataclass(frozen=True, slots=True)
class Unreadable:
    path: bytes
    error: str


def scan(root: bytes) -> Iterator[Scanned | Unreadable]:
    """Every entry below ``root`` (not ``root`` itself), parents before children, without
    following symbolic links. Files come without hash; ``link`` is set on the files that share
    an inode with another file of the tree."""
    scanned: list[Scanned] = []
    shared: dict[int, int] = {}

    def few(value: int) -> int:
        """One int object for the values most entries share (device, modes, owners): a
        million entries would otherwise hold a million equal ints each."""
        return shared.setdefault(value, value) if len(shared) < 4096 else value

    by_inode: dict[tuple[int, int], list[Scanned]] = {}
    stack = [b""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                names = sorted(e.name for e in it)
        except OSError as e:
            yield Unreadable(rel or b".", e.strerror or str(e))
            continue
        for name in names:
            path = rel + b"/" + name if rel else name
            full = os.path.join(root, path)
            try:
                st = os.lstat(full)
                node = node_from_stat(name, full, st)
            except OSError as e:
                yield Unreadable(path, e.strerror or str(e))
                continue
            entry = _entry(path, node, few)
            # a file not changed since it was written has its ctime equal to its mtime: one int
            ctime = entry.mtime if st.st_ctime_ns == entry.mtime else st.st_ctime_ns
            item = Scanned(entry, st.st_ino, few(st.st_dev), ctime)
            scanned.append(item)
            if node.type == FILE and st.st_nlink > 1:
                by_inode.setdefault((st.st_dev, st.st_ino), []).append(item)
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
    group = 0
    for links in by_inode.values():
        if len(links) > 1:
            group += 1
            for item in links:
                item.entry.link = group
    yield from scanned


def _entry(path: bytes, n: Node, few: Callable[[int], int]) -> Entry:
    return Entry(
        path=path,
        type=n.type,
        mode=few(n.mode),
        uid=few(n.uid),
        gid=few(n.gid),
        mtime=n.mtime,
        user=n.user,
        group=n.group,
        size=n.size,
        target=n.target,
        rdev=n.rdev,
        xattrs=n.xattrs or _NO_XATTRS,
    )


def hash_file(path: bytes, size: int, mtime: int) -> bytes:
    """The BLAKE3 of the file at ``path``, which the scan saw with ``size`` and ``mtime``.
    Raises FileChanged if the file is not as seen, or changes while it is read."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or (before.st_size, before.st_mtime_ns) != (
            size,
            mtime,
        ):
            raise FileChanged(f"{os.fsdecode(path)} changed since it was scanned")
        hasher = blake3.blake3()
        read = 0
        while chunk := os.read(fd, _READ):
            hasher.update(chunk)
            read += len(chunk)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if read != size or (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    ):
        raise FileChanged(f"{os.fsdecode(path)} changed while it was read")
    return hasher.digest()
