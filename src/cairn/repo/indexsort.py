"""Sorting the blob index's columns in little more memory than the sorted columns take.

The index's columns (cairn.repo.index) are a blob id and a row of four unsigned 32-bit
integers (pack number, offset, length, raw length) per blob: 48 bytes. The id is held in two
columns: its leading 8 bytes as an unsigned integer (``keys``, big-endian read, so that the
integers sort as the ids do) and its other 24 bytes (``tails``). A search runs over the keys,
a quarter of the ids' bytes, and the id is never held a second time for it. Sorting the
columns the plain way (concatenate, argsort, take) holds them two or three times over at once,
plus the permutation. Here they live in anonymous mappings (``Columns``), and ``sort_unique``

- scatters the entries, a block at a time, into the ranges of one new set of columns that
  their buckets (the leading bits of the id) will fill, the order of arrival kept within a
  bucket, and gives back the pages of each block read as soon as it is moved: the columns
  read shrink as fast as the new ones grow;
- then sorts each bucket (a few tens of thousands of entries) by its keys, the tails compared
  only where two share a key, and moves it down into place, an id repeated keeping only its
  first arrival.

Blob ids are keyed hashes, so the buckets are even; a skewed set of ids is sorted all the
same, with larger buckets.
"""

from __future__ import annotations

import importlib
import mmap
from collections.abc import Callable
from types import ModuleType
from typing import Any

ID_BYTES = 32
KEY_BYTES = 8  # the id's leading bytes, as an unsigned integer
TAIL_BYTES = ID_BYTES - KEY_BYTES
ROW_BYTES = 16
SEGMENT = 1 << 20  # entries in one set of columns that loaded blobs are appended to (48 MiB)
_BLOCK = 1 << 16  # entries scattered at once
_BUCKET = 1 << 15  # the entries a bucket holds on average, about
_DONTNEED: int | None = getattr(mmap, "MADV_DONTNEED", None)


def _np() -> ModuleType:
    return importlib.import_module("numpy")


def split_ids(ids: Any) -> tuple[Any, Any]:
    """An ``S32`` array of ids as its keys (the leading 8 bytes as unsigned integers, in the
    machine's order) and tails (``S24``): new arrays."""
    np = _np()
    raw = np.ascontiguousarray(ids).view(np.uint8).reshape(-1, ID_BYTES)
    keys = raw[:, :KEY_BYTES].copy().view(">u8").ravel().astype(np.uint64)
    tails = raw[:, KEY_BYTES:].copy().view(f"S{TAIL_BYTES}").ravel()
    return keys, tails


def join_ids(keys: Any, tails: Any) -> Any:
    """The ids (``S32``) of ``keys`` and ``tails``: a new array."""
    np = _np()
    raw = np.empty((len(keys), ID_BYTES), dtype=np.uint8)
    raw[:, :KEY_BYTES] = keys.astype(">u8").view(np.uint8).reshape(-1, KEY_BYTES)
    raw[:, KEY_BYTES:] = np.ascontiguousarray(tails).view(np.uint8).reshape(-1, TAIL_BYTES)
    return raw.view(f"S{ID_BYTES}").ravel()


def _mapping(size: int) -> mmap.mmap:
    """Anonymous memory of ``size`` bytes, resident only where written; private, so that
    ``MADV_DONTNEED`` frees its pages (a shared one would keep their contents)."""
    private = getattr(mmap, "MAP_PRIVATE", None)
    if private is None:
        return mmap.mmap(-1, size)
    return mmap.mmap(-1, size, flags=private | getattr(mmap, "MAP_ANONYMOUS", 0))


_WIDTHS = (KEY_BYTES, TAIL_BYTES, ROW_BYTES)


class Columns:
    """Entries in anonymous mappings: ``keys`` (``uint64``), ``tails`` (``S24``) and ``rows``
    (``(n, 4)`` little-endian uint32), filled from the start (``size`` entries so far) and read
    from the start, the pages read given back (``release``). Or, from ``wrap``, arrays held
    elsewhere."""

    def __init__(self, capacity: int) -> None:
        np = _np()
        self.capacity = capacity
        self.size = 0
        self._released = 0
        self._maps: tuple[mmap.mmap, ...] = ()
        if capacity == 0:
            self.keys: Any = np.empty(0, dtype=np.uint64)
            self.tails: Any = np.empty(0, dtype=f"S{TAIL_BYTES}")
            self.rows: Any = np.empty((0, 4), dtype="<u4")
            return
        key_map, tail_map, row_map = (_mapping(capacity * w) for w in _WIDTHS)
        self._maps = (key_map, tail_map, row_map)
        self.keys = np.frombuffer(key_map, dtype=np.uint64, count=capacity)
        self.tails = np.frombuffer(tail_map, dtype=f"S{TAIL_BYTES}", count=capacity)
        self.rows = np.frombuffer(row_map, dtype="<u4", count=capacity * 4).reshape(-1, 4)

    @classmethod
    def wrap(cls, ids: Any, rows: Any) -> Columns:
        """Ids (``S32``) and rows made elsewhere, as columns (``release`` leaves them be)."""
        c = cls(0)
        c.keys, c.tails = split_ids(ids)
        c.rows = rows
        c.capacity = c.size = len(ids)
        return c

    @property
    def room(self) -> int:
        return self.capacity - self.size

    def ids(self, start: int = 0, end: int | None = None) -> Any:
        """The ids of the entries from ``start`` to ``end`` (``S32``): a new array."""
        end = self.size if end is None else end
        return join_ids(self.keys[start:end], self.tails[start:end])

    def append(self, ids: Any, rows: Any) -> None:
        n = len(ids)
        keys, tails = split_ids(ids)
        self.keys[self.size : self.size + n] = keys
        self.tails[self.size : self.size + n] = tails
        self.rows[self.size : self.size + n] = rows
        self.size += n

    def release(self, upto: int) -> None:
        """Gives back the pages of the entries before ``upto``: they read as zeros after."""
        if not self._maps or _DONTNEED is None or upto <= self._released:
            return
        for m, width in zip(self._maps, _WIDTHS, strict=True):
            start = self._released * width // mmap.PAGESIZE * mmap.PAGESIZE
            end = upto * width // mmap.PAGESIZE * mmap.PAGESIZE
            if end > start:
                m.madvise(_DONTNEED, start, end - start)
        self._released = upto


def bucket_bits(total: int) -> int:
    """How many leading bits of the id pick the bucket, for ``total`` entries."""
    return max(0, min(16, (total // _BUCKET).bit_length()))


def _buckets(keys: Any, bits: int) -> Any:
    """The bucket of each entry of ``keys``: the leading ``bits`` of its id."""
    np = _np()
    if bits == 0:
        return np.zeros(len(keys), dtype=np.uint16)
    return (keys >> np.uint64(64 - bits)).astype(np.uint16)


def _order(keys: Any, tails: Any) -> Any:
    """The order that sorts the ids of ``keys`` and ``tails``, stable, without the later
    repeats of an id."""
    np = _np()
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    shared = sorted_keys[1:] == sorted_keys[:-1]
    if len(order) > 1 and shared.any():  # shared leading bytes: the tails decide
        order = np.lexsort((tails, keys))  # stable
        sorted_keys, sorted_tails = keys[order], tails[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (sorted_keys[1:] != sorted_keys[:-1]) | (sorted_tails[1:] != sorted_tails[:-1])
        if not first.all():
            order = order[first]
    return order


def sort_unique(runs: list[Columns], make: Callable[[int], Columns] = Columns) -> Columns:
    """The entries of ``runs``, sorted by id, an id that occurs more than once keeping its
    first entry (``runs`` in order, each from its start). Empties ``runs``, giving back each
    one's pages as its entries move; ``make(n)`` gives the new columns."""
    np = _np()
    total = sum(r.size for r in runs)
    bits = bucket_bits(total)
    n_buckets = 1 << bits
    counts = np.zeros(n_buckets, dtype=np.int64)
    for r in runs:
        for b0 in range(0, r.size, _BLOCK):
            keys = _buckets(r.keys[b0 : min(r.size, b0 + _BLOCK)], bits)
            counts += np.bincount(keys, minlength=n_buckets)
    starts = np.zeros(n_buckets + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    out = make(total)
    cursor = starts[:-1].copy()
    while runs:
        r = runs.pop(0)
        for b0 in range(0, r.size, _BLOCK):
            b1 = min(r.size, b0 + _BLOCK)
            keys = _buckets(r.keys[b0:b1], bits)
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
            in_block = np.bincount(keys, minlength=n_buckets)
            first = np.cumsum(in_block) - in_block  # where each bucket starts in the block
            at = cursor[sorted_keys] + (np.arange(b1 - b0) - first[sorted_keys])
            out.keys[at] = r.keys[b0:b1][order]
            out.tails[at] = r.tails[b0:b1][order]
            out.rows[at] = r.rows[b0:b1][order]
            cursor += in_block
            r.release(b1)
        del r
    kept = 0
    for b in range(n_buckets):
        s, e = int(starts[b]), int(starts[b + 1])
        if s == e:
            continue
        order = _order(out.keys[s:e], out.tails[s:e])
        sorted_keys = out.keys[s:e][order]
        sorted_tails = out.tails[s:e][order]
        sorted_rows = out.rows[s:e][order]
        n = len(order)
        out.keys[kept : kept + n] = sorted_keys
        out.tails[kept : kept + n] = sorted_tails
        out.rows[kept : kept + n] = sorted_rows
        kept += n
    out.size = kept
    return out
