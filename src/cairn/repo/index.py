"""The blob index: blob id -> (pack, offset, length, raw length).

In memory the index is a set of parallel numpy arrays sorted by id (the id's leading 8 bytes as
an integer and its other 24, then 4 * 4 bytes of numbers: 48 bytes per blob, no per-entry Python
objects; cairn.repo.indexsort) plus a dict of entries added since the last merge (each
value the entry's four numbers packed in 16 bytes, not a tuple of four integers).
The pack table (pack id, salt, blob type) is shared by all blobs of a pack.

On the store an index object is the encrypted msgpack map
``{"version": 1, "packs": [{"id", "salt", "type", "blobs": [[id, offset, length, raw_length]]}]}``.
"""

from __future__ import annotations

import importlib
import struct
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import chain
from types import ModuleType
from typing import Any

import msgpack

from cairn.crypto import aead
from cairn.repo.indexsort import KEY_BYTES, SEGMENT, Columns, join_ids, sort_unique, split_ids
from cairn.repo.pack import BlobRef

INDEX_VERSION = 1
# Index objects list at most about this many blobs, so reading one never needs much memory
# (a million tiny files would otherwise make one huge object).
INDEX_OBJECT_BLOBS = 50_000
_MERGE_MIN = 1 << 16
_APPEND_BLOBS = 1 << 16  # blobs of packs added in columns copied into the waiting ones at once
_SEARCH = 1 << 18  # ids looked up in one sorted batch (``places``)
_ROW = struct.Struct("<4I")  # pack number, offset, length, raw length
_KEY = struct.Struct(">Q")  # an id's key: its leading 8 bytes as an unsigned integer
_U32 = "I" if array("I").itemsize == 4 else "L"  # an array type of 32-bit unsigned integers


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


@dataclass(frozen=True)
class PackColumns:
    """One pack of an index object as columns, no object per blob: its blobs' ids joined (32
    bytes each) and their offset, length and raw length (three unsigned 32-bit integers each,
    in the machine's order). What loading the index reads: a million blobs cost a few dozen
    megabytes and no Python object each."""

    info: PackInfo
    ids: bytes
    numbers: array  # type: ignore[type-arg]
    # the pack's entry of an index object, encoded already (``encode_pack``), or None
    entry: bytes | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids) // 32

    @classmethod
    def of(cls, record: PackRecord, encoded: bool = False) -> PackColumns:
        """A pack's record as columns; ``encoded``: with its entry of an index object (made
        by whoever seals the pack, so that the journal and the index object only join it)."""
        numbers = array(_U32, [n for b in record.blobs for n in b[1:]])
        columns = cls(record.info, b"".join(b.id for b in record.blobs), numbers)
        return replace(columns, entry=encode_pack(columns)) if encoded else columns

    def record(self) -> PackRecord:
        ids, n = self.ids, self.numbers
        return PackRecord(
            self.info,
            [
                BlobRef(ids[i * 32 : i * 32 + 32], n[3 * i], n[3 * i + 1], n[3 * i + 2])
                for i in range(len(self))
            ],
        )


class PackRecords(Mapping[bytes, PackRecord]):
    """Pack id -> its record, made when asked from the pack's columns: every pack of a large
    index held this way costs its columns (44 bytes a blob), not a Python object per blob."""

    def __init__(self, columns: dict[bytes, PackColumns]) -> None:
        self.columns = columns

    def __getitem__(self, pack_id: bytes) -> PackRecord:
        return self.columns[pack_id].record()

    def __contains__(self, pack_id: object) -> bool:
        return pack_id in self.columns

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


class IndexLost(RuntimeError):
    """The in-memory index cannot answer: a merge of it failed midway."""

    def __init__(self) -> None:
        super().__init__(
            "the in-memory index was lost when sorting it failed; run the command again"
        )


class BlobIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packs: list[PackInfo] = []
        self._pack_no: dict[bytes, int] = {}
        # sorted arrays once merged: the ids' keys (uint64) and tails (S24), and pack no,
        # offset, length, raw length (uint32)
        self._keys: Any = ()
        self._tails: Any = ()
        self._cols: Any = ()
        self._recent: dict[bytes, bytes] = {}  # id -> _ROW
        self._merged: Columns | None = None  # what the arrays are views of
        # blobs of whole packs added at once (add_columns), not merged yet, in the order added
        self._pending: list[Columns] = []
        # a merge failed midway (out of memory): what it was sorting is gone, so no lookup may
        # answer any more (an absent blob would be a wrong answer, not a cautious one)
        self._failed: BaseException | None = None
        self.merges = 0  # merges so far: a place among the sorted ids holds until the next

    @contextmanager
    def held(self) -> Iterator[None]:
        """Holds the index's lock: no other thread changes it meanwhile (a process forked
        then gets a whole index, not one midway through a change)."""
        with self._lock:
            yield

    def after_fork(self) -> None:
        """In a forked child: a lock of its own (another thread of the parent may have held
        the one it was forked with, and never lets it go in the child)."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._settle()
            return len(self._keys) + len(self._recent)

    @property
    def packs(self) -> list[PackInfo]:
        return list(self._packs)

    def has_pack(self, pack_id: bytes) -> bool:
        return pack_id in self._pack_no

    def add_pack(self, record: PackRecord) -> None:
        with self._lock:
            if record.info.id in self._pack_no:
                return
            self._settle()  # a blob of the packs added in arrays is known
            no = len(self._packs)
            self._packs.append(record.info)
            self._pack_no[record.info.id] = no
            recent, pack = self._recent, _ROW.pack
            if not len(self._keys):  # nothing merged: the dict is the whole index
                for b in record.blobs:
                    if b.id not in recent:
                        recent[b.id] = pack(no, b.offset, b.length, b.raw_length)
            else:  # the merged arrays searched once for the whole pack
                blobs = [b for b in record.blobs if b.id not in recent]
                if blobs:
                    want = _np().frombuffer(b"".join(b.id for b in blobs), dtype="S32")
                    for b, known in zip(blobs, self._known(want).tolist(), strict=True):
                        if not known and b.id not in recent:
                            recent[b.id] = pack(no, b.offset, b.length, b.raw_length)
            if len(recent) >= max(_MERGE_MIN, len(self._keys) // 8):
                self._merge()

    def add_columns(self, packs: Iterable[PackColumns]) -> None:
        """Adds packs as an index object holds them (``decode_index_columns``), as ``add_pack``
        would, a pack already known or a blob already indexed left out; but in columns, sorted
        into the arrays all at once by the first lookup (``_settle``): loading a whole index
        costs one sort, not a lookup and a Python object per blob."""
        with self._lock:
            new: list[tuple[int, PackColumns]] = []
            count = 0
            for c in packs:
                if c.info.id in self._pack_no:
                    continue
                no = len(self._packs)
                self._packs.append(c.info)
                self._pack_no[c.info.id] = no
                if not self._pending and len(self._keys) + len(self._recent) + len(c) < _MERGE_MIN:
                    self._add_rows(no, c)  # a small index stays in the dict, without numpy
                    continue
                new.append((no, c))
                count += len(c)
                if count >= _APPEND_BLOBS:  # the copies _append makes stay small
                    self._append(new)
                    new, count = [], 0
            if new:
                self._append(new)

    def _append(self, packs: list[tuple[int, PackColumns]]) -> None:
        """Appends packs' blobs to the columns waiting to be sorted in."""
        np = _np()
        ids = np.frombuffer(b"".join(c.ids for _, c in packs), dtype="S32")
        rows = np.empty((len(ids), 4), dtype="<u4")
        rows[:, 0] = np.repeat([no for no, _ in packs], [len(c) for _, c in packs])
        numbers = b"".join(c.numbers.tobytes() for _, c in packs)
        rows[:, 1:] = np.frombuffer(numbers, dtype=np.uint32).reshape(-1, 3)
        done = 0
        while done < len(ids):
            if not self._pending or not self._pending[-1].room:
                self._pending.append(Columns(SEGMENT))
            seg = self._pending[-1]
            n = min(seg.room, len(ids) - done)
            seg.append(ids[done : done + n], rows[done : done + n])
            done += n

    def _add_rows(self, no: int, c: PackColumns) -> None:
        n = c.numbers
        for i in range(len(c)):
            blob_id = c.ids[i * 32 : i * 32 + 32]
            if blob_id not in self._recent and self._find(blob_id) < 0:
                self._recent[blob_id] = _ROW.pack(no, n[3 * i], n[3 * i + 1], n[3 * i + 2])

    def _settle(self) -> None:
        """Sorts in the packs added in columns, so that lookups see them."""
        if self._failed is not None:
            raise IndexLost() from self._failed
        if self._pending:
            self._merge()

    def _known(self, ids: Any) -> Any:
        """For an array of ids (S32): which the merged arrays have."""
        return self._search(*split_ids(ids)) >= 0

    def _search(self, want: Any, want_tails: Any) -> Any:
        """For ids as their keys and tails (``split_ids``): the place of each in the merged
        arrays, or -1.

        The search runs over the keys, the ids' leading 8 bytes as unsigned integers: a search
        for ids scattered over a large index is bound by the cache misses of its steps, and
        over whole ids it took 4 times as long (1.8 s for a million ids in a million). The
        tail at the place found is then compared; where it is not the one asked for but the
        key is the same (several ids share it), the tails of that key are searched."""
        np = _np()
        keys, tails = self._keys, self._tails
        last = len(keys) - 1
        at = np.minimum(keys.searchsorted(want), last)
        same_key = keys[at] == want
        found = same_key & (tails[at] == want_tails)
        places = np.where(found, at, -1)
        for i in np.flatnonzero(same_key & ~found).tolist():
            places[i] = self._shared(int(at[i]), want[i], want_tails[i])
        return places

    def _shared(self, at: int, key: Any, tail: bytes) -> int:
        """The place of the id of ``key`` and ``tail`` (the key's first entry at ``at``), or
        -1."""
        end = int(self._keys.searchsorted(key, side="right"))
        i = at + int(self._tails[at:end].searchsorted(tail))
        return i if i < end and self._tails[i] == tail else -1

    def _merge(self) -> None:
        """Sorts everything added since the last merge into the arrays. Where an id occurs
        more than once, the entry added first is kept (the merged arrays, then the dict, then
        the columns added, in their order), as ``add_pack`` keeps the first. The arrays are
        sorted anew with the rest (cairn.repo.indexsort), in little more memory than the new
        arrays take: the pages of what has moved are given back as the sort goes."""
        if self._failed is not None:
            raise IndexLost() from self._failed
        if not self._recent and not self._pending:
            return
        np = _np()
        runs: list[Columns] = []
        if self._merged is not None:
            runs.append(self._merged)
        if self._recent:
            runs.append(
                Columns.wrap(
                    np.frombuffer(b"".join(self._recent), dtype="S32"),
                    np.frombuffer(b"".join(self._recent.values()), dtype="<u4").reshape(-1, 4),
                )
            )
        runs.extend(self._pending)
        self._merged = None
        self._keys = self._tails = self._cols = ()
        self._recent = {}
        self._pending = []
        try:
            merged = sort_unique(runs)
        except BaseException as e:
            self._failed = e
            raise
        self._merged = merged
        self._keys = merged.keys[: merged.size]
        self._tails = merged.tails[: merged.size]
        self._cols = merged.rows[: merged.size]
        self.merges += 1

    def _find(self, blob_id: bytes) -> int:
        self._settle()
        keys = self._keys
        if not len(keys):
            return -1
        key = keys.dtype.type(_KEY.unpack_from(blob_id)[0])  # a numpy.uint64, as the keys
        i = int(keys.searchsorted(key))
        if i == len(keys) or keys[i] != key:
            return -1
        tail = blob_id[KEY_BYTES:].rstrip(b"\0")  # as numpy gives an S24 element
        if self._tails[i] == tail:
            return i
        return self._shared(i, key, tail)  # ids that share the key

    def __contains__(self, blob_id: bytes) -> bool:
        with self._lock:
            return blob_id in self._recent or self._find(blob_id) >= 0

    def contains_all(self, blob_ids: list[bytes]) -> list[bool]:
        """``blob_id in self`` for each of many ids, with one search of the sorted ids for all
        of them (a backup asks this for every file of a directory at once)."""
        if len(blob_ids) < 8 or not len(self._keys):
            return [b in self for b in blob_ids]
        np = _np()
        want = np.frombuffer(b"".join(blob_ids), dtype="S32")
        with self._lock:
            self._settle()
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

    def merged(self) -> int:
        """How many blobs the index holds, all that was added merged in first: the places of
        its sorted ids are 0 to that. A blob's place holds until the next merge (``merges``;
        only adding blobs makes one)."""
        with self._lock:
            self._merge()
            return len(self._keys)

    def ids_at(self, places: Any) -> Any:
        """The ids (``S32``) at ``places`` (an array) among the sorted ids, as of the last
        merge (``merged``)."""
        with self._lock:
            if not len(places):
                return _np().empty(0, dtype="S32")
            return join_ids(self._keys[places], self._tails[places])

    def places(self, ids: Any) -> Any:
        """For an array of ids (``S32``, in any order): each one's place among the sorted ids,
        or -1 (all that was added merged in first; ``merged``).

        Searched in batches sorted first: ids in their own, random, order miss the cache at
        nearly every step of the search, which took five times as long for ten million ids
        in ten million."""
        np = _np()
        out = np.full(len(ids), -1, dtype=np.int64)
        with self._lock:
            self._merge()
            if not len(self._keys):
                return out
            for start in range(0, len(ids), _SEARCH):
                part = ids[start : start + _SEARCH]
                want, want_tails = split_ids(part)
                order = np.argsort(want)
                at = np.empty(len(part), dtype=np.int64)
                at[order] = self._search(want[order], want_tails[order])
                out[start : start + len(part)] = at
        return out

    def blob_ids(self) -> Iterator[bytes]:
        with self._lock:  # a merge gives back the pages of the arrays it sorts anew
            self._settle()
            ids = join_ids(self._keys, self._tails) if len(self._keys) else b""
            recent = list(self._recent)
        raw = memoryview(ids).cast("B")  # the copy joined, not a second one
        for i in range(len(raw) // 32):
            yield bytes(raw[i * 32 : (i + 1) * 32])
        yield from recent

    def total_blobs_by_type(self) -> dict[int, tuple[int, int, int]]:
        """blob type -> (count, stored bytes, raw bytes)."""
        out: dict[int, tuple[int, int, int]] = {}
        np = _np()
        with self._lock:  # a merge gives back the pages of the arrays it sorts anew
            self._merge()
            types = np.array([p.blob_type for p in self._packs], dtype=np.uint8)
            if not len(self._keys):
                return out
            cols = self._cols
            blob_types = types[cols[:, 0]]
            for t in np.unique(blob_types):
                mask = blob_types == t
                out[int(t)] = (
                    int(mask.sum()),
                    int(cols[mask, 2].astype(np.uint64).sum()),
                    int(cols[mask, 3].astype(np.uint64).sum()),
                )
        return out

    def nbytes(self) -> int:
        """Bytes held by the merged arrays (entries not merged yet are not counted)."""
        with self._lock:
            self._settle()
        if not len(self._keys):
            return 0
        return int(self._keys.nbytes + self._tails.nbytes + self._cols.nbytes)


def blob_count(pack: PackRecord | PackColumns) -> int:
    """How many blobs a pack's record or columns list."""
    return len(pack) if isinstance(pack, PackColumns) else len(pack.blobs)


def _blob_rows(pack: PackRecord | PackColumns) -> list[list[Any]]:
    if isinstance(pack, PackRecord):
        return [[b.id, b.offset, b.length, b.raw_length] for b in pack.blobs]
    ids, n = pack.ids, iter(pack.numbers.tolist())
    return [
        [ids[i : i + 32], a, b, c]
        for i, a, b, c in zip(range(0, len(ids), 32), n, n, n, strict=True)
    ]


def encode_pack(pack: PackRecord | PackColumns) -> bytes:
    """One pack's entry of an index object, encoded: the map ``encode_index`` lists."""
    return msgpack.packb(  # type: ignore[no-any-return]
        {
            "id": pack.info.id,
            "salt": pack.info.salt,
            "type": pack.info.blob_type,
            "blobs": _blob_rows(pack),
        }
    )


def encode_index(records: Iterable[PackRecord | PackColumns]) -> bytes:
    """An index object listing ``records``: packs as records or as columns, the same; a pack
    whose entry is encoded already (``PackColumns.entry``) is not encoded again. The bytes
    are MessagePack's for ``{"version": ..., "packs": [entry, ...]}``, written in two parts."""
    entries = [
        r.entry if isinstance(r, PackColumns) and r.entry is not None else encode_pack(r)
        for r in records
    ]
    packer = msgpack.Packer()
    head = b"".join(
        (
            packer.pack_map_header(2),
            packer.pack("version"),
            packer.pack(INDEX_VERSION),
            packer.pack("packs"),
            packer.pack_array_header(len(entries)),
        )
    )
    return head + b"".join(entries)


def decode_index(data: bytes) -> list[PackRecord]:
    """Raises ValueError (or KeyError/TypeError) for a malformed index."""
    return [c.record() for c in decode_index_columns(data)]


def decode_index_columns(data: bytes) -> list[PackColumns]:
    """An index object's packs as columns. Raises ValueError (or KeyError/TypeError) for a
    malformed index: every blob must be ``[id, offset, length, raw length]``, a 32-byte id and
    three integers from 0 to 2**32 - 1. The checks run over whole columns, not blob by blob."""
    doc = msgpack.unpackb(data)
    if doc.get("version") != INDEX_VERSION:
        raise ValueError(f"unsupported index version {doc.get('version')!r}")
    out = []
    for p in doc["packs"]:
        info = PackInfo(bytes(p["id"]), bytes(p["salt"]), p["type"])
        if info.blob_type not in (0, 1) or len(info.id) != 32 or len(info.salt) != 32:
            raise ValueError("bad pack entry")
        blobs = p["blobs"]
        if type(blobs) is not list or not set(map(type, blobs)) <= {list}:
            raise ValueError("bad blob entry")
        if blobs and set(map(len, blobs)) != {4}:
            raise ValueError("bad blob entry")
        numbers = list(chain.from_iterable(blobs))
        ids = numbers[0::4]
        del numbers[0::4]  # offset, length, raw length of each blob, in turn
        if blobs and (set(map(type, ids)) != {bytes} or set(map(len, ids)) != {32}):
            raise ValueError("bad blob entry")
        if numbers and set(map(type, numbers)) != {int}:
            raise ValueError("bad blob entry")
        try:
            columns = array(_U32, numbers)
        except OverflowError:  # below 0 or from 2**32 on
            raise ValueError("bad blob entry") from None
        out.append(PackColumns(info, b"".join(ids), columns))
    return out
