"""The mirror's manifest (docs/mirror.md §4): entries, pieces (a base or a delta, stored as a
zstandard frame of msgpack named by its BLAKE3) and heads (JSON with a self-check)."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import blake3
import msgpack
import zstandard

from cairn.core.errors import CairnError
from cairn.model.node import TYPES
from cairn.ops.mirror.keys import BadPath, check_path

VERSION = 1
MAX_DELTAS = 32
_REQUIRED = ("path", "type", "mode", "uid", "gid", "mtime")
_INTS = ("mode", "uid", "gid", "mtime", "size", "rdev", "link")
_ZSTD_LEVEL = 3


class ManifestError(CairnError):
    """A manifest piece or head that is damaged, forged or of an unknown version."""


@dataclass(slots=True)
class Entry:
    path: bytes
    type: str
    mode: int
    uid: int
    gid: int
    mtime: int
    user: str | None = None
    group: str | None = None
    size: int = 0
    hash: bytes | None = None
    etag: str | None = None
    salt: bytes | None = None  # an encrypted mirror's file: its object's salt (§8.5)
    target: bytes | None = None
    rdev: int = 0
    link: int = 0
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)

    def to_map(self) -> dict[str, object]:
        out: dict[str, object] = {k: getattr(self, k) for k in _REQUIRED}
        for k in ("user", "group", "hash", "etag", "salt", "target"):
            if (v := getattr(self, k)) is not None:
                out[k] = v
        for k in ("size", "rdev", "link"):
            if v := getattr(self, k):
                out[k] = v
        if self.xattrs:
            out["xattrs"] = [[k, v] for k, v in self.xattrs]
        return out

    @classmethod
    def from_map(cls, m: object) -> Entry:
        if type(m) is not dict:
            raise ManifestError("an entry that is not a map")
        missing = [k for k in _REQUIRED if k not in m]
        if missing:
            raise ManifestError(f"an entry without {', '.join(missing)}")
        known = {k: v for k, v in m.items() if k in _FIELDS}  # later versions may add members
        try:
            entry = cls(**known)
        except TypeError as e:
            raise ManifestError(f"a malformed entry: {e}") from None
        entry._check()
        entry.xattrs = [(k, v) for k, v in entry.xattrs]
        return entry

    def _check(self) -> None:
        if type(self.path) is not bytes:
            raise ManifestError("an entry whose path is not bytes")
        try:
            check_path(self.path)
        except BadPath as e:
            raise ManifestError(str(e)) from None
        if self.type not in TYPES:
            raise ManifestError(f"{self.path!r}: unknown type {self.type!r}")
        for k in _INTS:
            v = getattr(self, k)
            if type(v) is not int or (k != "mtime" and v < 0):
                raise ManifestError(f"{self.path!r}: bad {k}")
        if self.type == "file" and (type(self.hash) is not bytes or len(self.hash) != 32):
            raise ManifestError(f"{self.path!r}: a file without a 32-byte hash")
        if self.salt is not None and (type(self.salt) is not bytes or len(self.salt) != 32):
            raise ManifestError(f"{self.path!r}: a salt that is not 32 bytes")
        if self.type == "symlink" and type(self.target) is not bytes:
            raise ManifestError(f"{self.path!r}: a symbolic link without a target")
        for k in ("user", "group", "etag"):
            v = getattr(self, k)
            if v is not None and type(v) is not str:
                raise ManifestError(f"{self.path!r}: bad {k}")
        xattrs = self.xattrs
        if type(xattrs) is not list or any(
            type(x) not in (list, tuple)
            or len(x) != 2
            or type(x[0]) is not bytes
            or type(x[1]) is not bytes
            for x in xattrs
        ):
            raise ManifestError(f"{self.path!r}: bad xattrs")


_FIELDS = frozenset(Entry.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Piece:
    """A stored piece: its name (the BLAKE3 of ``data``) and its bytes."""

    hash: str
    data: bytes


def _seal(doc: dict[str, object]) -> Piece:
    raw = msgpack.packb(doc, use_bin_type=True)
    data = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(raw)
    return Piece(blake3.blake3(data).hexdigest(), data)


def _seal_entries(
    doc: dict[str, object], key: str, entries: list[Entry], tail: dict[str, object] | None = None
) -> Piece:
    """The piece of ``doc``, then ``key`` the list of the maps of ``entries``, then ``tail``,
    as ``_seal`` makes it (the same msgpack), packed an entry at a time: a base of a million
    entries is never a million maps, nor its whole msgpack, at once. Packed twice, for the
    frame to record its content size, which a reader's one-shot decompression needs."""
    packer = msgpack.Packer(use_bin_type=True)
    after = tail or {}

    def chunks() -> Iterator[bytes]:
        yield packer.pack_map_header(len(doc) + 1 + len(after))
        for k, v in doc.items():
            yield packer.pack(k)
            yield packer.pack(v)
        yield packer.pack(key)
        yield packer.pack_array_header(len(entries))
        for e in entries:
            yield packer.pack(e.to_map())
        for k, v in after.items():
            yield packer.pack(k)
            yield packer.pack(v)

    size = sum(len(c) for c in chunks())
    compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compressobj(size=size)
    out = io.BytesIO()  # its value is taken without a copy: the frame is held once
    for c in chunks():
        if frame := compressor.compress(c):
            out.write(frame)
    out.write(compressor.flush())
    data = out.getvalue()
    return Piece(blake3.blake3(data).hexdigest(), data)


def check_piece(name: str, data: bytes) -> bytes:
    """``data``, if it is the piece named ``name`` (its BLAKE3)."""
    if blake3.blake3(data).hexdigest() != name:
        raise ManifestError(f"manifest piece {name} fails its hash")
    return data


def _open(name: str, data: bytes, kind: str) -> dict[str, object]:
    """The map of the zstandard frame ``data`` of the piece ``name``, whose stored bytes have
    passed their hash check (they are the frame itself, or in an encrypted mirror the frame
    sealed)."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(data)
        doc = msgpack.unpackb(raw, raw=False)
    except (zstandard.ZstdError, ValueError, TypeError) as e:
        raise ManifestError(f"manifest piece {name} cannot be decoded: {e}") from None
    if type(doc) is not dict:
        raise ManifestError(f"manifest piece {name} is not a map")
    if doc.get("version") != VERSION:
        raise ManifestError(f"manifest piece {name} has unknown version {doc.get('version')!r}")
    if doc.get("kind") != kind:
        raise ManifestError(f"manifest piece {name} is not a {kind}")
    return doc


def encode_base(entries: Iterable[Entry]) -> Piece:
    ordered = sorted(entries, key=lambda e: e.path)
    for a, b in itertools.pairwise(ordered):  # sorted: a repeat is a neighbour
        if a.path == b.path:
            raise ValueError(f"path {a.path!r} appears twice")
    return _seal_entries({"version": VERSION, "kind": "base"}, "entries", ordered)


def decode_base(name: str, data: bytes) -> dict[bytes, Entry]:
    return base_from_frame(name, check_piece(name, data))


def base_from_frame(name: str, frame: bytes) -> dict[bytes, Entry]:
    """The entries of the base ``name`` from its frame, the stored bytes already checked."""
    doc = _open(name, frame, "base")
    entries = _entries(doc.get("entries"), name)
    out: dict[bytes, Entry] = {}
    previous: bytes | None = None
    for e in entries:
        if previous is not None and e.path <= previous:
            raise ManifestError(f"manifest piece {name}: entries out of order at {e.path!r}")
        out[e.path] = e
        previous = e.path
    return out


@dataclass(slots=True)
class Delta:
    put: list[Entry] = field(default_factory=list)
    remove: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.put or self.remove)


def encode_delta(delta: Delta) -> Piece:
    _no_repeats([*(e.path for e in delta.put), *delta.remove])
    put = sorted(delta.put, key=lambda e: e.path)
    return _seal_entries(
        {"version": VERSION, "kind": "delta"}, "put", put, {"remove": sorted(delta.remove)}
    )


def decode_delta(name: str, data: bytes) -> Delta:
    return delta_from_frame(name, check_piece(name, data))


def delta_from_frame(name: str, frame: bytes) -> Delta:
    """The delta ``name`` from its frame, the stored bytes already checked."""
    doc = _open(name, frame, "delta")
    put = _entries(doc.get("put"), name)
    remove = doc.get("remove")
    if type(remove) is not list or any(type(p) is not bytes for p in remove):
        raise ManifestError(f"manifest piece {name}: bad remove list")
    try:
        _no_repeats([*(e.path for e in put), *remove])
    except ValueError as e:
        raise ManifestError(f"manifest piece {name}: {e}") from None
    return Delta(put, remove)


def apply(entries: dict[bytes, Entry], delta: Delta) -> None:
    for path in delta.remove:
        entries.pop(path, None)
    for e in delta.put:
        entries[e.path] = e


def check_tree(entries: dict[bytes, Entry]) -> None:
    """Refuses a manifest that is no tree: an entry whose parent is missing or not a
    directory (a reader would otherwise have to make one up, or write below a file)."""
    for path in entries:
        parent, sep, _name = path.rpartition(b"/")
        if sep and (up := entries.get(parent)) is None:
            raise ManifestError(f"{path!r} has no parent directory in the manifest")
        if sep and up is not None and up.type != "dir":
            raise ManifestError(f"{path!r} lies below {parent!r}, which is a {up.type}")


def diff(old: dict[bytes, Entry], new: dict[bytes, Entry]) -> Delta:
    """The delta that turns ``old`` into ``new``."""
    put = [e for p, e in new.items() if old.get(p) != e]
    remove = [p for p in old if p not in new]
    return Delta(put, remove)


def _entries(value: object, name: str) -> list[Entry]:
    if type(value) is not list:
        raise ManifestError(f"manifest piece {name}: entries are not a list")
    try:
        return [Entry.from_map(m) for m in value]
    except ManifestError as e:
        raise ManifestError(f"manifest piece {name}: {e}") from None


def _no_repeats(paths: Iterable[bytes]) -> None:
    seen: set[bytes] = set()
    for p in paths:
        if p in seen:
            raise ValueError(f"path {p!r} appears twice")
        seen.add(p)


@dataclass(frozen=True, slots=True)
class PieceRef:
    hash: str
    size: int


@dataclass(frozen=True, slots=True)
class Head:
    generation: int
    parent: int | None
    created: str
    host: str
    base: PieceRef
    deltas: tuple[PieceRef, ...]
    entries: int
    bytes: int

    def needs_compaction(self) -> bool:
        chain = sum(d.size for d in self.deltas)
        return len(self.deltas) > MAX_DELTAS or chain * 4 > self.base.size


def _canonical(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode_head(head: Head) -> bytes:
    doc: dict[str, object] = {
        "version": VERSION,
        "generation": head.generation,
        "parent": head.parent,
        "created": head.created,
        "host": head.host,
        "base": {"hash": head.base.hash, "size": head.base.size},
        "deltas": [{"hash": d.hash, "size": d.size} for d in head.deltas],
        "entries": head.entries,
        "bytes": head.bytes,
    }
    doc["check"] = blake3.blake3(_canonical(doc)).hexdigest()
    return _canonical(doc)


def decode_head(data: bytes) -> Head:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ManifestError("the manifest head is not JSON") from None
    if type(doc) is not dict:
        raise ManifestError("the manifest head is not an object")
    if doc.get("version") != VERSION:
        raise ManifestError(f"the manifest head has unknown version {doc.get('version')!r}")
    check = doc.pop("check", None)
    if check != blake3.blake3(_canonical(doc)).hexdigest():
        raise ManifestError("the manifest head fails its check")
    try:
        return Head(
            generation=_int(doc["generation"]),
            parent=None if doc["parent"] is None else _int(doc["parent"]),
            created=str(doc["created"]),
            host=str(doc["host"]),
            base=_ref(doc["base"]),
            deltas=tuple(_ref(d) for d in doc["deltas"]),
            entries=_int(doc["entries"]),
            bytes=_int(doc["bytes"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"the manifest head is malformed: {e}") from None


def _int(v: object) -> int:
    if type(v) is not int or v < 0:
        raise ValueError(f"not a count: {v!r}")
    return v


def _ref(v: object) -> PieceRef:
    if type(v) is not dict or type(v.get("hash")) is not str or len(v["hash"]) != 64:
        raise ValueError("a bad piece reference")
    return PieceRef(v["hash"], _int(v["size"]))


def head_name(generation: int) -> str:
    return f"{generation:020d}"
