"""The FUSE operations of a mount: paths resolved through the namespace and the snapshots'
trees, every entry's metadata as the snapshot recorded it, reads through the blob cache.

Inode numbers are stable: a hash of the snapshot's id and the entry's path, or, for the files
of a hardlink group, of the snapshot's id and the group's recorded (device, inode), so the
group is one inode with its recorded link count. Everything is read-only: an attempt to change
anything is refused by the kernel (the mount is made ``ro``). A blob whose pack has gone (a
prune moved it meanwhile) is looked for again after the index is read again.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import stat
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cairn.core.errors import CairnError, NotFoundError, ObjectMissing
from cairn.model.node import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.mount.blobcache import BlobCache
from cairn.ops.mount.content import FileContent, Zeros
from cairn.ops.mount.namespace import Dir, Link, Namespace
from cairn.ops.treewalk import TreeProblem, load_tree
from cairn.repo.layout import DATA_BLOB
from cairn.repo.repository import Repository

_TYPE_BITS = {
    FILE: stat.S_IFREG,
    DIR: stat.S_IFDIR,
    SYMLINK: stat.S_IFLNK,
    FIFO: stat.S_IFIFO,
    CHARDEV: stat.S_IFCHR,
    BLOCKDEV: stat.S_IFBLK,
    SOCKET: stat.S_IFSOCK,
}
TREES_KEPT = 4096  # directory listings kept decoded
AHEAD_THREADS = 4  # blobs fetched ahead of sequential reads at once


@dataclass(frozen=True)
class Found:
    """What a path names: a directory of the namespace, a link, or an entry of a snapshot."""

    path: bytes
    virtual: Dir | None = None
    link: Link | None = None
    snap: Snapshot | None = None
    node: Node | None = None


class SnapshotFS:
    use_ns = True  # times in nanoseconds

    def __init__(self, repo: Repository, namespace: Namespace, cache_size: int, started: int):
        self.repo = repo
        self.namespace = namespace
        self.cache = BlobCache(self.fetch, cache_size)  # decrypted data blobs, shared
        self.started = started  # ns: the time of the namespace's directories
        self._zero = Zeros(repo.blob_id)
        self._trees: OrderedDict[bytes, dict[bytes, Node]] = OrderedDict()
        self._trees_lock = threading.Lock()
        self._open: dict[int, FileContent] = {}
        self._handles = itertools.count(1)
        self._index_lock = threading.Lock()
        # read ahead at most a quarter of the cache, so that what is read ahead stays in it
        self._ahead = ThreadPoolExecutor(AHEAD_THREADS, thread_name_prefix="cairn-readahead")
        self._ahead_bytes = min(16 << 20, cache_size // 4)

    def close(self) -> None:
        """Stops the read-ahead (after the file system is unmounted)."""
        self._ahead.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ blobs
    def fetch(self, blob_id: bytes) -> bytes:
        """A data blob's bytes; when its pack is gone (a prune repacked it), the index is read
        again and the blob read from its new place."""
        try:
            return self.repo.load_blob(blob_id, DATA_BLOB)
        except (NotFoundError, ObjectMissing):
            self._reload_index()
            return self.repo.load_blob(blob_id, DATA_BLOB)

    def _reload_index(self) -> None:
        with self._index_lock:
            self.repo.load_index()

    def _lengths(self, blob_id: bytes) -> tuple[int, int] | None:
        entry = self.repo.index.get(blob_id)
        if entry is None:
            self._reload_index()
            entry = self.repo.index.get(blob_id)
        return None if entry is None else (entry.raw_length, entry.length)

    def _listing(self, tree_id: bytes) -> dict[bytes, Node]:
        with self._trees_lock:
            found = self._trees.get(tree_id)
            if found is not None:
                self._trees.move_to_end(tree_id)
                return found
        try:
            nodes = load_tree(self.repo, tree_id, on_problem=_ignore)
        except (NotFoundError, ObjectMissing):  # a newer snapshot, or a pack a prune replaced
            self._reload_index()
            try:
                nodes = load_tree(self.repo, tree_id, on_problem=_ignore)
            except CairnError as e:
                self.repo.notice(f"tree {tree_id.hex()[:16]}", f"cannot be read: {e}")
                raise OSError(errno.EIO, "tree") from None
        except CairnError as e:
            self.repo.notice(f"tree {tree_id.hex()[:16]}", f"cannot be read: {e}")
            raise OSError(errno.EIO, "tree") from None
        listing = {n.name: n for n in nodes}
        with self._trees_lock:
            self._trees[tree_id] = listing
            while len(self._trees) > TREES_KEPT:
                self._trees.popitem(last=False)
        return listing

    # ------------------------------------------------------------------ paths
    def find(self, path: str) -> Found:
        raw = path.encode("utf-8", "surrogateescape")
        parts = [p for p in raw.split(b"/") if p]
        here: Dir | Link | Snapshot = self.namespace.root()
        i = 0
        while i < len(parts) and isinstance(here, dict):
            nxt = here.get(parts[i])
            if nxt is None:
                raise OSError(errno.ENOENT, path)
            here = nxt
            i += 1
        if isinstance(here, dict):
            return Found(raw, virtual=here)
        if isinstance(here, Link):
            if i < len(parts):
                raise OSError(errno.ENOTDIR, path)
            return Found(raw, link=here)
        node = Node(name=b"", type=DIR, mode=0o755, subtree=here.tree, mtime=_ns(here))
        node.atime = node.ctime = node.mtime
        for part in parts[i:]:
            if node.type != DIR or node.subtree is None:
                raise OSError(errno.ENOTDIR, path)
            found = self._listing(node.subtree).get(part)
            if found is None:
                raise OSError(errno.ENOENT, path)
            node = found
        return Found(raw, snap=here, node=node)

    # ------------------------------------------------------------------ metadata
    def _ino(self, *parts: bytes) -> int:
        digest = hashlib.blake2b(b"\0".join(parts), digest_size=8).digest()
        return (int.from_bytes(digest, "little") >> 1) or 1

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        found = self.find(path)
        if found.node is None or found.snap is None:
            if found.link is not None:
                mode, size = stat.S_IFLNK | 0o777, len(found.link.target)
            else:
                mode, size = stat.S_IFDIR | 0o555, 0
            t = self.started
            return {
                "st_mode": mode,
                "st_ino": self._ino(b"namespace", found.path),
                "st_nlink": 1 if found.link else 2,
                "st_size": size,
                "st_atime": t,
                "st_mtime": t,
                "st_ctime": t,
            }
        return self._node_attrs(found.snap, found.path, found.node)

    def _node_ino(self, snap: Snapshot, path: bytes, node: Node) -> int:
        if node.type == FILE and node.links > 1 and node.inode:
            return self._ino(snap.id.encode(), b"%d:%d" % (node.dev, node.inode))
        return self._ino(snap.id.encode(), path)

    def _node_attrs(self, snap: Snapshot, path: bytes, node: Node) -> dict[str, int]:
        ino = self._node_ino(snap, path, node)
        size = node.size
        blocks = 0
        if node.type == SYMLINK:
            size = len(node.target or b"")
        elif node.type == FILE:
            blocks = (self._content(node).stored_bytes() + 511) // 512
        elif node.type == DIR:
            size = 0
        return {
            "st_mode": _TYPE_BITS[node.type] | node.mode,
            "st_ino": ino,
            "st_nlink": node.links if node.type == FILE else (2 if node.type == DIR else 1),
            "st_uid": node.uid,
            "st_gid": node.gid,
            "st_size": size,
            "st_blocks": blocks,
            "st_blksize": 4096,
            "st_rdev": node.rdev,
            "st_atime": node.atime,
            "st_mtime": node.mtime,
            "st_ctime": node.ctime,
        }

    def _content(self, node: Node, ahead: bool = False) -> FileContent:
        try:
            return FileContent(
                node,
                self._lengths,
                self.cache,
                self._zero,
                (self._ahead, self._ahead_bytes) if ahead and self._ahead_bytes else None,
            )
        except CairnError:
            raise OSError(errno.EIO, node.name.decode("utf-8", "surrogateescape")) from None

    def opendir(self, path: str) -> int:
        return 0

    def releasedir(self, path: str | None, fh: int) -> int:
        return 0

    def readdir(self, path: str, fh: int | None = None) -> list[tuple[str, dict[str, int], int]]:
        """The entries with their inode numbers and types (with ``use_ino``, an entry without
        an inode number would be skipped by readers of the directory)."""
        found = self.find(path)
        here = self.getattr(path)
        parent = self.getattr(path.rsplit("/", 1)[0] or "/")
        out = [
            (".", {"st_ino": here["st_ino"], "st_mode": here["st_mode"]}, 0),
            ("..", {"st_ino": parent["st_ino"], "st_mode": parent["st_mode"]}, 0),
        ]
        if found.virtual is not None:
            for name, entry in found.virtual.items():
                mode = stat.S_IFLNK | 0o777 if isinstance(entry, Link) else stat.S_IFDIR | 0o555
                ino = self._ino(b"namespace", found.path + b"/" + name)
                out.append((_text(name), {"st_ino": ino, "st_mode": mode}, 0))
        elif found.snap is not None and found.node is not None and found.node.type == DIR:
            listing = self._listing(found.node.subtree) if found.node.subtree else {}
            for name, node in listing.items():
                ino = self._node_ino(found.snap, found.path + b"/" + name, node)
                mode = _TYPE_BITS[node.type] | node.mode
                out.append((_text(name), {"st_ino": ino, "st_mode": mode}, 0))
        else:
            raise OSError(errno.ENOTDIR, path)
        return out

    def readlink(self, path: str) -> str:
        found = self.find(path)
        if found.link is not None:
            target = found.link.target
        elif found.node is not None and found.node.type == SYMLINK:
            target = found.node.target or b""
        else:
            raise OSError(errno.EINVAL, path)
        return target.decode("utf-8", "surrogateescape")

    def _xattrs(self, path: str) -> dict[bytes, bytes]:
        found = self.find(path)
        return dict(found.node.xattrs) if found.node is not None else {}

    def listxattr(self, path: str) -> list[str]:
        return [n.decode("utf-8", "surrogateescape") for n in self._xattrs(path)]

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        value = self._xattrs(path).get(name.encode("utf-8", "surrogateescape"))
        if value is None:
            raise OSError(errno.ENODATA, name)
        return value

    # ------------------------------------------------------------------ reads
    def open(self, path: str, flags: int) -> int:
        found = self.find(path)
        if found.node is None or found.node.type != FILE:
            raise OSError(errno.EISDIR if found.virtual is not None else errno.EINVAL, path)
        handle = next(self._handles)
        self._open[handle] = self._content(found.node, ahead=True)
        return handle

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        content = self._open.get(fh)
        if content is None:
            raise OSError(errno.EBADF, path or "")
        try:
            return content.read(offset, size)
        except CairnError as e:
            self.repo.notice(path or "", f"cannot be read: {e}")
            raise OSError(errno.EIO, path or "") from None

    def release(self, path: str | None, fh: int) -> int:
        self._open.pop(fh, None)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}


def _text(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _ns(snap: Snapshot) -> int:
    return int(snap.time.timestamp()) * 1_000_000_000 + snap.time.microsecond * 1000


def _ignore(problem: TreeProblem) -> None:
    pass
