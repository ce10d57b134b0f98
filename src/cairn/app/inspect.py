"""Looking inside a repository: its numbers (stats) and single objects, decrypted (cat)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cairn.app.context import Session
from cairn.core.errors import IntegrityError, NotFoundError, UsageError
from cairn.crypto.keys import read_key_file
from cairn.model.node import Node, TreeFormatError, decode_listing
from cairn.ops.snapshots import SnapshotFilter, load_snapshots, resolve
from cairn.ops.stats import repository_stats, snapshot_stats
from cairn.repo import layout
from cairn.repo.index import BlobIndex, decode_index

KINDS = ("config", "snapshot", "tree", "blob", "index", "key")


def stats(
    session: Session, ref: str | None = None, flt: SnapshotFilter | None = None
) -> dict[str, Any]:
    """Repository totals, or with ``ref`` (``latest`` or an id prefix) what restoring that
    snapshot would write."""
    repo = session.repo
    if ref:
        snap = resolve(repo, ref, flt)
        repo.load_index()  # after the snapshot: a newer one may use newer index objects
        return snapshot_stats(repo, snap)
    count = len(load_snapshots(repo, flt))
    repo.load_index()
    return repository_stats(repo, count)


@dataclass
class Catted:
    """A decrypted object: a JSON-ready document, or a blob's raw bytes. A tree's entries
    that break the format's rules are left out of ``nodes`` and described in ``problems``."""

    doc: dict[str, Any] | None = None
    data: bytes | None = None
    nodes: list[Node] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def cat(session: Session, kind: str, object_id: str | None) -> Catted:
    if kind not in KINDS:
        raise UsageError(f"cannot show {kind!r} (one of {', '.join(KINDS)})")
    if kind != "config" and not object_id:
        raise UsageError(f"cat {kind} needs an id")
    repo = session.repo
    ref = object_id or ""
    if kind == "config":
        return Catted(doc=asdict(repo.config))
    if kind == "snapshot":
        return Catted(doc=resolve(repo, ref).to_json())
    if kind == "key":
        names = [n for n, _ in repo.storage.list(layout.KEYS)]
        key_id = layout.by_prefix([layout.id_of(n) for n in names], ref, "key")
        return Catted(doc=read_key_file(repo.storage.read(layout.key_name(key_id))))
    if kind == "index":
        names = [layout.id_of(n) for n, _ in repo.storage.list(layout.INDEX)]
        name = layout.INDEX + layout.by_prefix(names, ref, "index")
        return Catted(doc={"packs": [_pack_json(r) for r in decode_index(repo.load_object(name))]})
    repo.load_index()
    blob_type = layout.DATA_BLOB if kind == "blob" else layout.TREE_BLOB
    blob_id = _blob_id(repo.index, ref, blob_type, kind)
    if kind == "blob":
        return Catted(data=repo.load_blob(blob_id))
    return _tree(repo.load_blob(blob_id, layout.TREE_BLOB), blob_id)


def _tree(data: bytes, tree_id: bytes) -> Catted:
    try:
        listing = decode_listing(data)
    except TreeFormatError as e:
        raise IntegrityError(f"tree {tree_id.hex()}", str(e)) from None
    out = Catted(doc={}, nodes=list(listing.nodes))
    short = tree_id.hex()[:16]
    for bad in listing.bad:
        out.problems.append(f"tree {short}: entry {_text(bad.shown())} left out: {bad.reason}")
    if listing.unsorted:
        out.problems.append(f"tree {short}: entries are not sorted by name")
    if listing.bad or listing.unsorted:
        assert out.doc is not None
        out.doc["left_out"] = [
            {"position": b.position, "name": _text(b.shown()), "reason": b.reason}
            for b in listing.bad
        ]
        out.doc["sorted"] = not listing.unsorted
    return out


def _pack_json(r: Any) -> dict[str, Any]:
    return {
        "id": r.info.id.hex(),
        "type": layout.BLOB_TYPES[r.info.blob_type],
        "blobs": [
            {"id": b.id.hex(), "offset": b.offset, "length": b.length, "raw_length": b.raw_length}
            for b in r.blobs
        ],
    }


def _text(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


SHOWN_CANDIDATES = 10


def _blob_id(index: BlobIndex, text: str, blob_type: int, what: str) -> bytes:
    """The blob of ``blob_type`` (``what``: "blob" or "tree") whose id is ``text`` or starts
    with it; an ambiguous prefix is refused with the ids it matches."""
    ref = text.lower()
    if not ref or len(ref) > 64 or any(c not in "0123456789abcdef" for c in ref):
        raise UsageError(f"{text!r} is not a {what} id (up to 64 hex digits: an id or a prefix)")
    if len(ref) == 64:
        return bytes.fromhex(ref)

    def of_type(blob_id: bytes) -> bool:
        entry = index.get(blob_id)
        return entry is not None and entry.pack.blob_type == blob_type

    matches = sorted(h for b in index.blob_ids() if (h := b.hex()).startswith(ref) and of_type(b))
    if not matches:
        raise NotFoundError(f"no {what} with id {ref}")
    if len(matches) > 1:
        shown = ", ".join(m[: len(ref) + 8] for m in matches[:SHOWN_CANDIDATES])
        more = len(matches) - SHOWN_CANDIDATES
        if more > 0:
            shown += f" and {more} more"
        raise UsageError(f"{what} id prefix {ref} is ambiguous: {shown}")
    return bytes.fromhex(matches[0])
