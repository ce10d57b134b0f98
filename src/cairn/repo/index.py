"""The blob index: blob id -> (pack, offset, length, raw length).

In memory the index is a set of parallel numpy arrays sorted by id (32 + 4 * 4 = 48 bytes per
blob, no per-entry Python objects) plus a dict of entries added since the last merge (each
value the entry's four numbers packed in 16 bytes, not a tuple of four integers).
The pack table (pack id, salt, blob type) is shared by all blobs of a pack.

On the store an index object is the encrypted msgpack map
``{"version": 1, "packs": [{"id", "salt", "type", "blobs": [[id, offset, length, raw_length]]}]}``.
"""

from __future__ import annotations

import importlib
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import msgpack

from cairn.crypto import aead
from cairn.repo.pack import BlobRef

INDEX_VERSION = 1
# Index objects list at most about this many blobs, so reading one never needs much memory
# (a million tiny files would otherwise make one huge object).
INDEX_OBJECT_BLOBS = 50_000
_MERGE_MIN = 1 << 16
_ROW = struct.Struct("<4I")
_LIMIT = 1 << 32  # pack number, offset, length, raw length


def _np() -> ModuleType:
    """numpy, loaded on the first merge: small repositories never need it, and a command's
    peak memory is lower when numpy is not yet loaded while the password KDF runs."""
    return importlib.import_module("numpy")


@dataclass(frozen=True)
class PackInfo:
    id: bytes
    salt: bytes
    blob_type: int


@dataclass(frozen=True)
class IndexEntry:
    pack: PackInfo
    offset: int
    length: int
    raw_length: int

    @property
    def compressed(self) -> bool:
        """Whether the blob is stored compressed (zstd shrank it, so its data compresses),
        told from its lengths: a blob stored as is is its data, a mode byte and a tag."""
        return self.length < self.raw_length + 1 + aead.TAG_LEN


@dataclass(frozen=True)
class PackRecord:
    """One pack as written into an index object."""

    info: PackInfo
    blobs: list[BlobRef]


class BlobIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packs: list[PackInfo] = []
        self._pack_no: dict[bytes, int] = {}
        # sorted arrays once merged: ids (S32) and pack no, offset, length, raw length (uint32)
        self._ids: Any = ()
        self._cols: Any = ()
        self._recent: dict[bytes, bytes] = {}  # id -> _ROW

    def __len__(self) -> int:
        return len(self._ids) + len(self._recent)

    @property
    def packs(self) -> list[PackInfo]:
        return list(self._packs)

    def has_pack(self, pack_id: bytes) -> bool:
        return pack_id in self._pack_no

    def add_pack(self, record: PackRecord, loading: bool = False) -> None:
        """``loading``: one of many packs added at once, with no lookup until ``loaded``: a
        blob the merged arrays have already is dropped when the entries are merged, not looked
        up one at a time (a blob in two packs: the first pack added wins either way)."""
        with self._lock:
            if record.info.id in self._pack_no:
                return
            no = len(self._packs)
            self._packs.append(record.info)
            self._pack_no[record.info.id] = no
            recent, pack = self._recent, _ROW.pack
            if loading or not len(self._ids):
                for b in record.blobs:
                    if b.id not in recent:
                        recent[b.id] = pack(no, b.offset, b.length, b.raw_length)
            else:
                for b in record.blobs:
                    if b.id not in recent and self._find(b.id) < 0:
                        recent[b.id] = pack(no, b.offset, b.length, b.raw_length)
            if len(recent) >= max(_MERGE_MIN, len(self._ids) // 8):
                self._merge()

    def loaded(self) -> None:
        """After packs added with ``loading``: drops the entries not merged yet that the merged
        arrays have (one search for all of them)."""
        with self._lock:
            if not self._recent or not len(self._ids):
                return
            np = _np()
            ids = list(self._recent)
            for i in np.flatnonzero(self._known(np.array(ids, dtype="S32"))).tolist():
                del self._recent[ids[i]]

    def _known(self, ids: Any) -> Any:
        """For an array of ids (S32): which the merged arrays have."""
        np = _np()
        at = np.minimum(self._ids.searchsorted(ids), len(self._ids) - 1)
        return self._ids[at] == ids

    def _merge(self) -> None:
        if not self._recent:
            return
        np = _np()
        new_ids = np.array(list(self._recent.keys()), dtype="S32")
        new_cols = np.frombuffer(b"".join(self._recent.values()), dtype="<u4").reshape(-1, 4)
        if len(self._ids):
            # entries added while loading are not looked up one by one: the merged arrays'
            # entry of a blob stays (its pack came first)
            new = ~self._known(new_ids)
            if not new.all():
                new_ids, new_cols = new_ids[new], new_cols[new]
        ids = np.concatenate([self._ids, new_ids]) if len(self._ids) else new_ids
        cols = np.concatenate([self._cols, new_cols]) if len(self._ids) else new_cols
        order = np.argsort(ids, kind="stable")
        self._ids = ids[order]
        self._cols = np.ascontiguousarray(cols[order])
        self._recent = {}

    def _find(self, blob_id: bytes) -> int:
        if not len(self._ids):
            return -1
        i = int(self._ids.searchsorted(blob_id))
        if i < len(self._ids) and self._ids[i] == blob_id.rstrip(b"\0"):
            return i
        return -1

    def __contains__(self, blob_id: bytes) -> bool:
        with self._lock:
            return blob_id in self._recent or self._find(blob_id) >= 0

    def contains_all(self, blob_ids: list[bytes]) -> list[bool]:
        """``blob_id in self`` for each of many ids, with one search of the sorted ids for all
        of them (a backup asks this for every file of a directory at once)."""
        if len(blob_ids) < 8 or not len(self._ids):
            return [b in self for b in blob_ids]
        np = _np()
        want = np.frombuffer(b"".join(blob_ids), dtype="S32")
        with self._lock:
            recent = self._recent
            found = self._known(want)
            return [bool(f) or b in recent for f, b in zip(found.tolist(), blob_ids, strict=True)]

    def get(self, blob_id: bytes) -> IndexEntry | None:
        with self._lock:
            packed = self._recent.get(blob_id)
            if packed is not None:
                no, offset, length, raw = _ROW.unpack(packed)
            else:
                i = self._find(blob_id)
                if i < 0:
                    return None
                no, offset, length, raw = (int(x) for x in self._cols[i])
            return IndexEntry(self._packs[no], offset, length, raw)

    def blob_ids(self) -> Iterator[bytes]:
        raw = self._ids.tobytes() if len(self._ids) else b""
        for i in range(len(self._ids)):
            yield raw[i * 32 : (i + 1) * 32]
        yield from list(self._recent)

    def total_blobs_by_type(self) -> dict[int, tuple[int, int, int]]:
        """blob type -> (count, stored bytes, raw bytes)."""
        with self._lock:
            self._merge()
        out: dict[int, tuple[int, int, int]] = {}
        np = _np()
        types = np.array([p.blob_type for p in self._packs], dtype=np.uint8)
        if not len(self._ids):
            return out
        blob_types = types[self._cols[:, 0]]
        for t in np.unique(blob_types):
            mask = blob_types == t
            out[int(t)] = (
                int(mask.sum()),
                int(self._cols[mask, 2].astype(np.uint64).sum()),
                int(self._cols[mask, 3].astype(np.uint64).sum()),
            )
        return out

    def nbytes(self) -> int:
        """Bytes held by the merged arrays (entries not merged yet are not counted)."""
        return int(self._ids.nbytes + self._cols.nbytes) if len(self._ids) else 0


def encode_index(records: Iterable[PackRecord]) -> bytes:
    packs = [
        {
            "id": r.info.id,
            "salt": r.info.salt,
            "type": r.info.blob_type,
            "blobs": [[b.id, b.offset, b.length, b.raw_length] for b in r.blobs],
        }
        for r in records
    ]
    return msgpack.packb({"version": INDEX_VERSION, "packs": packs})  # type: ignore[no-any-return]


def decode_index(data: bytes) -> list[PackRecord]:
    """Raises ValueError (or KeyError/TypeError) for a malformed index."""
    doc = msgpack.unpackb(data)
    if doc.get("version") != INDEX_VERSION:
        raise ValueError(f"unsupported index version {doc.get('version')!r}")
    records = []
    for p in doc["packs"]:
        info = PackInfo(bytes(p["id"]), bytes(p["salt"]), p["type"])
        if info.blob_type not in (0, 1) or len(info.id) != 32 or len(info.salt) != 32:
            raise ValueError("bad pack entry")
        blobs = [BlobRef(bytes(i), o, ln, r) for i, o, ln, r in p["blobs"]]
        for i, o, ln, r in p["blobs"]:
            # straight-line checks: this runs for every blob of the repository
            if not (
                type(o) is int
                and type(ln) is int
                and type(r) is int
                and 0 <= o < _LIMIT
                and 0 <= ln < _LIMIT
                and 0 <= r < _LIMIT
                and len(i) == 32
            ):
                raise ValueError("bad blob entry")
        records.append(PackRecord(info, blobs))
    return records
