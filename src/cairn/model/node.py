"""Tree nodes and tree blobs.

A tree blob is one directory: the msgpack map ``{"version": 1, "nodes": [node, ...]}`` with
nodes sorted by name (raw bytes). A node is a map holding only the fields that apply to its type:

    name     bytes   the entry's name (any bytes but '/' and NUL; never '.' or '..')
    type     str     file | dir | symlink | fifo | chardev | blockdev | socket
    mode     int     permission bits incl. setuid, setgid, sticky (st_mode & 0o7777)
    uid gid  int     numeric owner and group
    user group str   owner and group names, when known on the source
    mtime atime ctime int  nanoseconds since the epoch
    size     int     file size in bytes
    inode dev links int  inode, device and link count (hardlinks share inode+dev)
    content  [bytes] data blob ids of a file, in order
    subtree  bytes   tree blob id of a directory
    target   bytes   symlink target
    rdev     int     device number of a device node
    xattrs   [[bytes, bytes]]  extended attributes, sorted by name
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import msgpack

TREE_VERSION = 1
FILE, DIR, SYMLINK, FIFO, CHARDEV, BLOCKDEV, SOCKET = (
    "file",
    "dir",
    "symlink",
    "fifo",
    "chardev",
    "blockdev",
    "socket",
)
TYPES = frozenset({FILE, DIR, SYMLINK, FIFO, CHARDEV, BLOCKDEV, SOCKET})


class TreeFormatError(ValueError):
    pass


@dataclass(slots=True)
class Node:
    name: bytes
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str | None = None
    group: str | None = None
    mtime: int = 0
    atime: int = 0
    ctime: int = 0
    size: int = 0
    inode: int = 0
    dev: int = 0
    links: int = 1
    content: list[bytes] = field(default_factory=list)
    subtree: bytes | None = None
    target: bytes | None = None
    rdev: int = 0
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)

    def to_map(self) -> dict[str, object]:
        get = self.__getattribute__  # faster than dataclasses.fields(): this runs per file
        out = {
            k: v
            for k in _FIELD_NAMES
            if (v := get(k)) is not None and (v or k not in _OPTIONAL_EMPTY)
        }
        if "xattrs" in out:
            out["xattrs"] = [list(x) for x in self.xattrs]
        return out

    @classmethod
    def from_map(cls, m: dict[str, object]) -> Node:
        try:
            node = cls(**m)  # type: ignore[arg-type]
        except TypeError as e:
            raise TreeFormatError(f"bad node: {e}") from None
        if not isinstance(node.name, bytes) or node.type not in TYPES:
            raise TreeFormatError("bad node name or type")
        node.content = [bytes(c) for c in node.content]
        node.xattrs = [(bytes(k), bytes(v)) for k, v in node.xattrs]
        return node


_OPTIONAL_EMPTY = {"content", "xattrs", "rdev", "inode", "dev", "size", "atime", "ctime"}
_FIELD_NAMES = tuple(f.name for f in fields(Node))


def encode_tree(nodes: list[Node]) -> bytes:
    nodes = sorted(nodes, key=lambda n: n.name)
    return msgpack.packb(  # type: ignore[no-any-return]
        {"version": TREE_VERSION, "nodes": [n.to_map() for n in nodes]}, use_bin_type=True
    )


def decode_tree(data: bytes) -> list[Node]:
    try:
        doc = msgpack.unpackb(data, raw=False)
        if doc.get("version") != TREE_VERSION:
            raise TreeFormatError(f"unsupported tree version {doc.get('version')!r}")
        return [Node.from_map(m) for m in doc["nodes"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TreeFormatError(str(e)) from None


def is_safe_name(name: bytes) -> bool:
    """A name that may be created inside a directory: no separators, not '.' or '..'."""
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\0" not in name
