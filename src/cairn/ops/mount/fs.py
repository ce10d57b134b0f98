"""The FUSE operations of a mount: paths resolved through the namespace and the snapshots'
trees, every entry's metadata as the snapshot recorded it, reads through the blob cache.

Inode numbers are stable: a hash of the snapshot's id and the entry's path, or, for the files
of a hardlink group, of the snapshot's id and the group's recorded (device, inode), so the
group is one inode with its recorded link count. Everything is read-only: an attempt to change
anything is refused by the kernel (the mount is made ``ro``). A blob whose pack has gone (a
prune moved it meanwhile) is looked for again after the index is read again.

Each call from the kernel is a call into Python (tens of microseconds), so the file system
answers with as few as it can: listings carry their entries' attributes (``entries``), which
spares the kernel's lookups, there is no ``open``, ``release``, ``opendir`` or ``releasedir``
(libfuse answers those itself), and a path is resolved from its directory's kept node.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cairn.core.errors import CairnError, NotFoundError, ObjectMissing
from cairn.core.memory import trim_malloc
from cairn.model.node import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.mount.blobcache import Blob, BlobCache
from cairn.ops.mount.content import FileContent, Zeros, stored_bytes
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
STAT_WALK_LISTINGS = 64  # listings given with their files' attributes after a file's lookup
CONTENTS_KEPT = 256  # files read lately, whose blobs' places are kept
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
        # decrypted data blobs, shared; the heaps' pages of those dropped are given back
        self.cache = BlobCache(self.fetch, cache_size, release=trim_malloc)
        self.started = started  # ns: the time of the namespace's directories
        self._zero = Zeros(repo.blob_id)
        self._trees: OrderedDict[bytes, dict[bytes, Node]] = OrderedDict()
        self._trees_lock = threading.Lock()  # of the listings and of the directories
        self._dirs: OrderedDict[tuple[str, bytes], Node] = OrderedDict()
        self._roots: dict[str, Node] = {}  # by snapshot id
        self._contents: OrderedDict[str, FileContent] = OrderedDict()  # by path
        self._contents_lock = threading.Lock()
        self._stat_walk = 0  # listings still to give with their files' attributes
        self._index_lock = threading.Lock()
        # read ahead at most a quarter of the cache, so that what is read ahead stays in it
        self._ahead = ThreadPoolExecutor(AHEAD_THREADS, thread_name_prefix="cairn-readahead")
        self._ahead_bytes = min(16 << 20, cache_size // 4)

    def close(self) -> None:
        """Stops the read-ahead (after the file system is unmounted)."""
        self._ahead.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ blobs
    def fetch(self, blob_id: bytes) -> Blob:
        """A data blob's bytes, in memory of their own (the cache keeps them); when its pack is
        gone (a prune repacked it), the index is read again and the blob read from its new
        place."""
        try:
            return self.repo.load_blob_kept(blob_id, DATA_BLOB)
        except (NotFoundError, ObjectMissing):
            self._reload_index()
            return self.repo.load_blob_kept(blob_id, DATA_BLOB)

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
        return Found(raw, snap=here, node=self._inside(here, parts[i:], path))

    def _inside(self, snap: Snapshot, parts: list[bytes], path: str) -> Node:
        """The entry at ``parts`` in the snapshot's tree. The directories that hold the
        entries looked up are kept, so a path is one listing's lookup, not one per part."""
        if not parts:
            return self._root(snap)
        key = (snap.id, b"/".join(parts[:-1]))
        with self._trees_lock:
            parent = self._dirs.get(key)
            if parent is not None:
                self._dirs.move_to_end(key)
        if parent is None:
            parent = self._root(snap)
            for part in parts[:-1]:
                parent = self._child(parent, part, path)
            with self._trees_lock:
                self._dirs[key] = parent
                while len(self._dirs) > TREES_KEPT:
                    self._dirs.popitem(last=False)
        return self._child(parent, parts[-1], path)

    def _root(self, snap: Snapshot) -> Node:
        """The snapshot's top directory, with the snapshot's time."""
        node = self._roots.get(snap.id)
        if node is None:
            node = Node(name=b"", type=DIR, mode=0o755, subtree=snap.tree, mtime=_ns(snap))
            node.atime = node.ctime = node.mtime
            self._roots[snap.id] = node
        return node

    def _child(self, node: Node, name: bytes, path: str) -> Node:
        if node.type != DIR or node.subtree is None:
            raise OSError(errno.ENOTDIR, path)
        found = self._listing(node.subtree).get(name)
        if found is None:
            raise OSError(errno.ENOENT, path)
        return found

    # ------------------------------------------------------------------ metadata
    def _ino(self, *parts: bytes) -> int:
        digest = hashlib.blake2b(b"\0".join(parts), digest_size=8).digest()
        return (int.from_bytes(digest, "little") >> 1) or 1

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        found = self.find(path)
        if found.node is None or found.snap is None:
            return self._virtual_attrs(found.path, found.link or found.virtual or {})
        if found.node.type != DIR:  # a program looks at the files it lists
            self._stat_walk = STAT_WALK_LISTINGS
        return self._node_attrs(found.snap, found.path, found.node)

    def _virtual_attrs(self, path: bytes, entry: Dir | Link) -> dict[str, int]:
        """A directory of the namespace, or a ``latest`` link."""
        if isinstance(entry, Link):
            mode, size, links = stat.S_IFLNK | 0o777, len(entry.target), 1
        else:
            mode, size, links = stat.S_IFDIR | 0o555, 0, 2
        t = self.started
        return {
            "st_mode": mode,
            "st_ino": self._ino(b"namespace", path),
            "st_nlink": links,
            "st_size": size,
            "st_atime": t,
            "st_mtime": t,
            "st_ctime": t,
        }

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
            blocks = (self._stored_bytes(node) + 511) // 512
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

    def _stored_bytes(self, node: Node) -> int:
        try:
            return stored_bytes(node, self._lengths, self._zero)
        except CairnError:
            raise OSError(errno.EIO, node.name.decode("utf-8", "surrogateescape")) from None

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

    def readdir(self, path: str, fh: int | None = None) -> list[tuple[str, dict[str, int], int]]:
        """The entries with their inode numbers and types (with ``use_ino``, an entry without
        an inode number would be skipped by readers of the directory): what mfusepy's own
        listing takes (the mount's, ``binding.fuse_class``, takes ``entries``)."""
        return [(_text(name), attrs, 0) for name, attrs, _ in self.entries(path, False, 0)]

    def entries(
        self, path: str, plus: bool, start: int
    ) -> Iterator[tuple[bytes, dict[str, int], bool]]:
        """The directory's entries from the ``start``-th on (``.`` and ``..`` first), each with
        its attributes and whether they are complete: when ``plus``, those of the directories
        always (a walk of the tree looks each up), those of the other entries while the files
        of listings are being looked up (a ``tar``, an ``ls -l``, not a ``find``): the kernel
        makes an inode of every entry given complete, which costs a walk that never looks at
        the files more than it saves."""
        found = self.find(path)
        if found.virtual is None and (found.node is None or found.node.type != DIR):
            raise OSError(errno.ENOTDIR, path)
        files = plus and self._stat_walk > 0
        if plus and start == 0:
            self._stat_walk = max(self._stat_walk - 1, 0)
        if start < 2:
            here = self.getattr(path)
            parent = self.getattr(path.rsplit("/", 1)[0] or "/")
            for name, attrs in ((b".", here), (b"..", parent))[start:]:
                yield name, _brief(attrs), False
        skip = max(start - 2, 0)
        base = found.path.rstrip(b"/") + b"/"  # the entries' paths as getattr is given them
        if found.virtual is not None:
            for name, entry in itertools.islice(found.virtual.items(), skip, None):
                if isinstance(entry, Snapshot):
                    attrs = self._node_attrs(entry, base + name, self._root(entry))
                else:
                    attrs = self._virtual_attrs(base + name, entry)
                yield name, attrs, plus
            return
        assert found.snap is not None and found.node is not None
        listing = self._listing(found.node.subtree) if found.node.subtree else {}
        for name, node in itertools.islice(listing.items(), skip, None):
            if (node.type == DIR and plus) or files:
                yield name, self._node_attrs(found.snap, base + name, node), True
                continue
            ino = self._node_ino(found.snap, base + name, node)
            yield name, {"st_ino": ino, "st_mode": _TYPE_BITS[node.type] | node.mode}, False

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
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        """The file is found by its path: there is no ``open`` (nor ``release``), which libfuse
        then answers itself, sparing two calls into Python for every file opened."""
        content = self._content_at(path)
        try:
            return content.read(offset, size)
        except CairnError as e:
            self.repo.notice(path, f"cannot be read: {e}")
            raise OSError(errno.EIO, path) from None

    def _content_at(self, path: str) -> FileContent:
        """The content of the file at ``path``, kept for the reads that follow: the last
        ``CONTENTS_KEPT`` files read, so a file read by pieces is found once."""
        with self._contents_lock:
            content = self._contents.get(path)
            if content is not None:
                self._contents.move_to_end(path)
                return content
        found = self.find(path)
        if found.node is None or found.node.type != FILE:
            directory = found.virtual is not None or (found.node and found.node.type == DIR)
            raise OSError(errno.EISDIR if directory else errno.EINVAL, path)
        content = self._content(found.node, ahead=True)
        with self._contents_lock:
            self._contents[path] = content
            while len(self._contents) > CONTENTS_KEPT:
                self._contents.popitem(last=False)
        return content

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}


def _brief(attrs: dict[str, int]) -> dict[str, int]:
    """What a listing without attributes gives of an entry."""
    return {"st_ino": attrs["st_ino"], "st_mode": attrs["st_mode"]}


def _text(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _ns(snap: Snapshot) -> int:
    return int(snap.time.timestamp()) * 1_000_000_000 + snap.time.microsecond * 1000


def _ignore(problem: TreeProblem) -> None:
    pass
