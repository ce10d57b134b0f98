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

Every decoded node is checked against docs/format.md §7.2 (types, ranges, id lengths, safe
names) before anything uses it; ``decode_listing`` leaves invalid entries and repeated names
out of a tree and says which, so a hostile tree cannot crash a reader or make it allocate
what a field claims.
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
        """The node's map: its fields in their order, but those that are None, and the
        optional ones (``_OPTIONAL_EMPTY``) when empty or zero. Written out field by field (it
        runs per entry of every tree written): a loop over the fields took twice as long."""
        out: dict[str, object] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.type is not None:
            out["type"] = self.type
        if self.mode is not None:
            out["mode"] = self.mode
        if self.uid is not None:
            out["uid"] = self.uid
        if self.gid is not None:
            out["gid"] = self.gid
        if self.user is not None:
            out["user"] = self.user
        if self.group is not None:
            out["group"] = self.group
        if self.mtime is not None:
            out["mtime"] = self.mtime
        if self.atime:
            out["atime"] = self.atime
        if self.ctime:
            out["ctime"] = self.ctime
        if self.size:
            out["size"] = self.size
        if self.inode:
            out["inode"] = self.inode
        if self.dev:
            out["dev"] = self.dev
        if self.links is not None:
            out["links"] = self.links
        if self.content:
            out["content"] = self.content
        if self.subtree is not None:
            out["subtree"] = self.subtree
        if self.target is not None:
            out["target"] = self.target
        if self.rdev:
            out["rdev"] = self.rdev
        if self.xattrs:
            out["xattrs"] = [list(x) for x in self.xattrs]
        return out

    @classmethod
    def from_map(cls, m: object) -> Node:
        """A node from its map, checked against the schema (docs/format.md §7.2); raises
        TreeFormatError saying what is wrong."""
        if type(m) is not dict:
            raise TreeFormatError(f"not a map but {_kind(m)}")
        try:
            node = cls(**m)
        except TypeError:
            unknown = sorted(repr(k) for k in m if k not in _FIELD_SET)
            raise TreeFormatError(f"unknown field {', '.join(unknown)}") from None
        if not _plainly_valid(node):
            raise TreeFormatError(_problem(node) or "malformed node")
        if node.xattrs:
            node.xattrs = [(k, v) for k, v in node.xattrs]
        return node


_OPTIONAL_EMPTY = {"content", "xattrs", "rdev", "inode", "dev", "size", "atime", "ctime"}
_FIELD_NAMES = tuple(f.name for f in fields(Node))
_FIELD_SET = frozenset(_FIELD_NAMES)

# Ranges of the integer fields (docs/format.md §7.2)
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
_I64 = (-(1 << 63), (1 << 63) - 1)
_INT_RANGES = {
    "mode": (0, 0o7777),
    "uid": (0, _U32),
    "gid": (0, _U32),
    "mtime": _I64,
    "atime": _I64,
    "ctime": _I64,
    "size": (0, _I64[1]),
    "inode": (0, _U64),
    "dev": (0, _U64),
    "links": (0, _U64),
    "rdev": (0, _U64),
}
ID_LEN = 32
_DOTS = (b".", b"..")
# The deepest a tree may be nested: entries of the root tree are at depth 1, and a directory at
# depth MAX_DEPTH has no listing a reader reads. A path that deep is longer than any path the
# system resolves (PATH_MAX, 4,096 bytes), so nothing a backup can read is cut off.
MAX_DEPTH = 4096


def _plainly_valid(
    n: Node,
    _bytes: type = bytes,
    _str: type = str,
    _dots: tuple[bytes, ...] = _DOTS,
    _types: frozenset[str] = TYPES,
) -> bool:
    """Whether a node is valid: the check of every decoded node. It runs for every file a
    restore or a backup reads, so it is straight-line code with its constants bound as locals
    (``_problem`` says what is wrong and is the specification; the two must agree)."""
    name = n.name
    if type(name) is not _bytes or not name or name in _dots or b"/" in name or b"\0" in name:
        return False
    # The type, then the integers and their ranges (§7.2) with shifts: ``x >> k == 0`` holds
    # for 0 <= x < 2**k only, ``(t >> 63) + 1`` is 0 or 1 for a signed 64-bit t only, and a
    # shift or an or of anything but an int (a float, a string, None) raises TypeError, as
    # does looking up an unhashable type.
    try:
        if (
            n.type not in _types
            or n.mode >> 12
            | (n.uid | n.gid) >> 32
            | n.size >> 63
            | (n.inode | n.dev | n.links | n.rdev) >> 64
            | ((n.mtime >> 63) + 1 | (n.atime >> 63) + 1 | (n.ctime >> 63) + 1) >> 1
        ):
            return False
    except TypeError:
        return False
    kind = n.type
    user, group = n.user, n.group
    if (user is not None and (type(user) is not _str or "\0" in user)) or (
        group is not None and (type(group) is not _str or "\0" in group)
    ):
        return False
    content = n.content
    if type(content) is not list:
        return False
    if content:
        if kind != FILE:
            return False
        for c in content:
            if type(c) is not _bytes or len(c) != ID_LEN:
                return False
    subtree = n.subtree
    if subtree is not None and (
        kind != DIR or type(subtree) is not _bytes or len(subtree) != ID_LEN
    ):
        return False
    target = n.target
    if kind == SYMLINK:
        if type(target) is not _bytes or not target or b"\0" in target:
            return False
    elif target is not None:
        return False
    xattrs = n.xattrs
    if type(xattrs) is not list:
        return False
    return not xattrs or all(_valid_xattr(x) for x in xattrs)


def _valid_xattr(x: object) -> bool:
    return (
        type(x) in (list, tuple)
        and len(x) == 2  # type: ignore[arg-type]
        and type(x[0]) is bytes  # type: ignore[index]
        and x[0] != b""  # type: ignore[index]
        and b"\0" not in x[0]  # type: ignore[index]
        and type(x[1]) is bytes  # type: ignore[index]
    )


def _problem(n: Node) -> str | None:
    """What is wrong with a node, or None (docs/format.md §7.2)."""
    if type(n.name) is not bytes:
        return f"name is {_kind(n.name)}, not bytes"
    if not is_safe_name(n.name):
        return f"unsafe name {n.name!r} (empty, '.', '..', or with '/' or NUL)"
    if type(n.type) is not str or n.type not in TYPES:
        return f"unknown type {n.type!r}"[:200]
    for key, (lo, hi) in _INT_RANGES.items():
        v = getattr(n, key)
        if not isinstance(v, int):  # msgpack's true and false are ints too
            return f"{key} is {_kind(v)}, not an integer"
        if not lo <= v <= hi:
            return f"{key} {v} is out of range ({lo} to {hi})"[:200]
    for key in ("user", "group"):
        v = getattr(n, key)
        if v is not None and (type(v) is not str or "\0" in v):
            return f"{key} is not a string without NUL"
    if type(n.content) is not list:
        return f"content is {_kind(n.content)}, not a list"
    if n.content and n.type != FILE:
        return f"a {n.type} has content"
    for c in n.content:
        if type(c) is not bytes or len(c) != ID_LEN:
            return f"content holds {_kind(c)}, not a {ID_LEN}-byte blob id"
    if n.subtree is not None:
        if n.type != DIR:
            return f"a {n.type} has a subtree"
        if type(n.subtree) is not bytes or len(n.subtree) != ID_LEN:
            return f"subtree is {_kind(n.subtree)}, not a {ID_LEN}-byte tree id"
    if n.type == SYMLINK:
        if type(n.target) is not bytes or not n.target or b"\0" in n.target:
            return "a symlink needs a target: non-empty bytes without NUL"
    elif n.target is not None:
        return f"a {n.type} has a target"
    if type(n.xattrs) is not list:
        return f"xattrs is {_kind(n.xattrs)}, not a list"
    for x in n.xattrs:
        if not _valid_xattr(x):
            return "xattrs holds something other than a [name, value] pair of bytes"
    return None


def _kind(v: object) -> str:
    """A value's type, for messages (never the value: it may be huge)."""
    if isinstance(v, (bytes, str, list, tuple, dict)):
        return f"{type(v).__name__} of length {len(v)}"
    return type(v).__name__


def encode_tree(nodes: list[Node]) -> bytes:
    nodes = sorted(nodes, key=lambda n: n.name)
    return msgpack.packb(  # type: ignore[no-any-return]
        {"version": TREE_VERSION, "nodes": [n.to_map() for n in nodes]}, use_bin_type=True
    )


@dataclass(frozen=True, slots=True)
class BadEntry:
    """An entry of a tree that a reader leaves out."""

    position: int  # in the tree's list of nodes
    name: bytes | None  # its name, when that is bytes
    reason: str

    def shown(self) -> bytes:
        """The entry's name for messages, or its position when it has none."""
        if self.name is None:
            return f"<entry {self.position}>".encode()
        return self.name.replace(b"/", b"\\x2f").replace(b"\0", b"\\x00") or b"<empty name>"


@dataclass(slots=True)
class Listing:
    """A decoded tree: its valid entries (the first of each name), and what was left out."""

    nodes: list[Node]
    bad: list[BadEntry]
    unsorted: bool  # names not in ascending byte order (a tree must be sorted)


def decode_listing(data: bytes | memoryview) -> Listing:
    """The entries of a tree blob, each checked; invalid entries and every entry after the
    first of a name are left out and listed in ``bad``. Raises TreeFormatError when the tree
    as a whole cannot be read."""
    try:
        doc = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError) as e:  # msgpack's errors are ValueErrors
        raise TreeFormatError(f"not a tree: {e}") from None
    if type(doc) is not dict:
        raise TreeFormatError(f"not a tree: {_kind(doc)}")
    if doc.get("version") != TREE_VERSION:
        raise TreeFormatError(f"unsupported tree version {doc.get('version')!r}"[:200])
    raw = doc.get("nodes")
    if type(raw) is not list:
        raise TreeFormatError(f"nodes is {_kind(raw)}, not a list")
    nodes: list[Node] = []
    bad: list[BadEntry] = []
    unsorted = False
    prev = b""
    seen: set[bytes] | None = None  # only once the names are not strictly ascending
    for i, m in enumerate(raw):
        # Node.from_map, inlined for the valid entries: this runs for every file
        try:
            node = Node(**m)
        except TypeError:
            node = None
        if node is None or not _plainly_valid(node):
            try:
                Node.from_map(m)  # says what is wrong
                reason = "malformed node"
            except TreeFormatError as e:
                reason = str(e)
            name = m.get("name") if type(m) is dict else None
            bad.append(BadEntry(i, name if type(name) is bytes else None, reason))
            continue
        if node.xattrs:
            node.xattrs = [(k, v) for k, v in node.xattrs]
        name = node.name
        if seen is None and name <= prev and nodes:
            seen = {n.name for n in nodes}
        if seen is not None:
            if name in seen:
                bad.append(BadEntry(i, name, "duplicate name: only the first entry is read"))
                continue
            seen.add(name)
            unsorted = unsorted or name < prev
        nodes.append(node)
        prev = name
    return Listing(nodes, bad, unsorted)


def decode_tree(data: bytes | memoryview) -> list[Node]:
    """The entries of a tree blob that must be entirely valid: raises TreeFormatError for any
    invalid entry, a repeated name or names out of order."""
    listing = decode_listing(data)
    if listing.bad:
        b = listing.bad[0]
        raise TreeFormatError(f"entry {b.shown().decode(errors='replace')}: {b.reason}")
    if listing.unsorted:
        raise TreeFormatError("entries are not sorted by name")
    return listing.nodes


def is_safe_name(name: bytes) -> bool:
    """A name that may be created inside a directory: no separators, not '.' or '..'."""
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\0" not in name
