"""Reading a mirror with reads alone (docs/mirror.md §6): the marker, the newest head (from
the ``latest`` hint, then probing the next numbers, no listing), and the manifest it names,
every piece checked against its hash."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from cairn.core.errors import ObjectMissing, RepositoryError
from cairn.ops.mirror.codec import PLAIN, Codec, open_codec
from cairn.ops.mirror.crypt import EncryptionUnknown, read_encryption
from cairn.ops.mirror.keys import AREA
from cairn.ops.mirror.manifest import (
    VERSION,
    Entry,
    Head,
    ManifestError,
    PieceRef,
    apply,
    base_from_frame,
    check_tree,
    decode_head,
    delta_from_frame,
    head_name,
)
from cairn.storage.base import Storage

MARKER = f"{AREA}/mirror"
LATEST = f"{AREA}/latest"
HEADS = f"{AREA}/heads"
PIECES = f"{AREA}/manifest"
_ATTEMPTS = 3  # a head named by the hint may be removed by a writer that commits meanwhile


class NotAMirror(RepositoryError):
    pass


@dataclass(frozen=True, slots=True)
class Marker:
    id: str
    created: str
    encryption: object
    prefix_bytes: int = 0  # the bucket prefix's length the keys of §3 were made for


def head_path(generation: int) -> str:
    return f"{HEADS}/{head_name(generation)}"


def piece_path(ref: PieceRef | str) -> str:
    return f"{PIECES}/{ref if isinstance(ref, str) else ref.hash}"


def read_marker(store: Storage) -> Marker:
    try:
        data = store.read(MARKER)
    except ObjectMissing:
        raise NotAMirror(f"{store.describe()} is not a mirror (no {MARKER})") from None
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise NotAMirror(f"{store.describe()}: {MARKER} is not JSON") from None
    if type(doc) is not dict or doc.get("format") != "cairn-mirror":
        raise NotAMirror(f"{store.describe()}: {MARKER} is not a cairn mirror's marker")
    if doc.get("version") != VERSION:
        raise NotAMirror(f"{store.describe()}: unknown mirror version {doc.get('version')!r}")
    encryption = doc.get("encryption")
    if encryption is not None and type(encryption) is not dict:
        raise NotAMirror(f"{store.describe()}: unknown encryption {encryption!r}")
    if encryption is not None:
        try:
            read_encryption(encryption)  # refused before any password is asked for
        except EncryptionUnknown as e:
            raise NotAMirror(f"{store.describe()}: {e}") from None
    if type(doc.get("id")) is not str or type(doc.get("created")) is not str:
        raise NotAMirror(f"{store.describe()}: {MARKER} lacks its id or date")
    prefix = doc.get("prefix-bytes", 0)
    if type(prefix) is not int or not 0 <= prefix < 1024:
        raise NotAMirror(f"{store.describe()}: {MARKER} has a bad prefix-bytes")
    return Marker(doc["id"], doc["created"], doc["encryption"], prefix)


def open_mirror(
    store: Storage, password: Callable[[], bytes] | None = None
) -> tuple[Marker, Codec]:
    """The marker of the mirror on ``store`` and its codec: an encrypted mirror's opened with
    ``password()`` (which a plain mirror never calls)."""
    marker = read_marker(store)
    return marker, open_codec(marker.encryption, marker.prefix_bytes, password)


def read_head(store: Storage, generation: int, codec: Codec = PLAIN) -> Head | None:
    """The head of ``generation``, checked; None if there is none."""
    name = head_path(generation)
    try:
        data = store.read(name)
    except ObjectMissing:
        return None
    head = decode_head(codec.open_head(data, name))
    if head.generation != generation:
        raise ManifestError(f"{head_path(generation)} holds generation {head.generation}")
    return head


def newest_head(store: Storage, known: Head | None = None, codec: Codec = PLAIN) -> Head | None:
    """The newest committed head, or None before the first commit. Given a head the caller
    has already (``known``), learning that nothing is newer takes a single read."""
    head = known
    for _attempt in range(_ATTEMPTS):
        if head is None and (hint := _hint(store)):
            head = read_head(store, hint, codec)
            if head is None:
                continue  # removed by a writer that committed meanwhile: ask the hint again
        while following := read_head(store, (head.generation if head else 0) + 1, codec):
            head = following
        return head
    raise ManifestError(f"the heads named by {LATEST} keep disappearing")


def _hint(store: Storage) -> int:
    try:
        text = store.read(LATEST).decode("ascii", "replace").strip()
    except ObjectMissing:
        return 0
    if not text.isdigit():
        raise ManifestError(f"{LATEST} is not a generation number: {text[:40]!r}")
    return int(text)


def load_manifest(store: Storage, head: Head, codec: Codec = PLAIN) -> dict[bytes, Entry]:
    """The entries of ``head``'s generation by path: its base with its deltas applied,
    checked to form a tree."""
    base = head.base.hash
    entries = base_from_frame(base, codec.open_piece(base, _piece(store, head.base)))
    for ref in head.deltas:
        apply(entries, delta_from_frame(ref.hash, codec.open_piece(ref.hash, _piece(store, ref))))
    check_tree(entries)
    return entries


def _piece(store: Storage, ref: PieceRef) -> bytes:
    try:
        data = store.read(piece_path(ref))
    except ObjectMissing:
        raise ManifestError(f"manifest piece {ref.hash} is missing") from None
    if len(data) != ref.size:
        raise ManifestError(f"manifest piece {ref.hash} has {len(data)} bytes, not {ref.size}")
    return data
