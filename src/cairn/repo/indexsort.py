"""Sorting the blob index's columns in little more memory than the sorted columns take.

The index's columns (cairn.repo.index) are a blob id (32 bytes) and a row of four unsigned
32-bit integers (pack number, offset, length, raw length) per blob: 48 bytes. Sorting them
the plain way (concatenate, argsort, take) holds them two or three times over at once, plus
the permutation. Here they live in anonymous mappings (``Columns``), and ``sort_unique``

- scatters the entries, a block at a time, into the ranges of one new set of columns that
  their buckets (the leading bits of the id) will fill, the order of arrival kept within a
  bucket, and gives back the pages of each block read as soon as it is moved: the columns
  read shrink as fast as the new ones grow;
- then sorts each bucket (a few tens of thousands of entries) by the id's leading 8 bytes as
  an unsigned integer, the whole ids compared only where two share them, and moves it down
  into place, an id repeated keeping only its first arrival.

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
ROW_BYTES = 16
SEGMENT = 1 << 20  # entries in one set of columns that loaded blobs are appended to (48 MiB)
_BLOCK = 1 << 16  # entries scattered at once
_BUCKET = 1 << 15  # the entries a bucket holds on average, about
_DONTNEED: int | None = getattr(mmap, "MADV_DONTNEED", None)


def _np() -> ModuleType:
    return importlib.import_module("numpy")


def _mapping(size: int) -> mmap.mmap:
    """Anonymous memory of ``size`` bytes, resident only where written; private, so that
    ``MADV_DONTNEED`` frees its pages (a shared one would keep their contents)."""
    private = getattr(mmap, "MAP_PRIVATE", None)
    if private is None:
        return mmap.mmap(-1, size)
    return mmap.mmap(-1, size, flags=private | getattr(mmap, "MAP_ANONYMOUS", 0))


class Columns:
    """Entries in anonymous mappings: ``ids`` (``S32``) and ``rows`` (``(n, 4)`` little-endian
    uint32), filled from the start (``size`` entries so far) and read from the start, the pages
    read given back (``release``). Or, from ``wrap``, arrays held elsewhere."""

    def __init__(self, capacity: int) -> None:
        np = _np()
        self.capacity = capacity
        self.size = 0
        self._released = 0
        self._maps: tuple[mmap.mmap, ...] = ()
        if capacity == 0:
            self.ids: Any = np.empty(0, dtype="S32")
            self.rows: Any = np.empty((0, 4), dtype="<u4")
            return
        id_map = _mapping(capacity * ID_BYTES)
        row_map = _mapping(capacity * ROW_BYTES)
        self._maps = (id_map, row_map)
        self.ids = np.frombuffer(id_map, dtype="S32", count=capacity)
        self.rows = np.frombuffer(row_map, dtype="<u4", count=capacity * 4).reshape(-1, 4)

    @classmethod
    def wrap(cls, ids: Any, rows: Any) -> Columns:
        """Arrays made elsewhere, as columns (``release`` leaves them be)."""
        c = cls(0)
        c.ids, c.rows = ids, rows
        c.capacity = c.size = len(ids)
        return c

    @property
    def room(self) -> int:
        return self.capacity - self.size

    def append(self, ids: Any, rows: Any) -> None:
        n = len(ids)
        self.ids[self.size : self.size + n] = ids
        self.rows[self.size : self.size + n] = rows
        self.size += n

    def release(self, upto: int) -> None:
        """Gives back the pages of the entries before ``upto``: they read as zeros after."""
        if not self._maps or _DONTNEED is None or upto <= self._released:
            return
        for m, width in zip(self._maps, (ID_BYTES, ROW_BYTES), strict=True):
            start = self._released * width // mmap.PAGESIZE * mmap.PAGESIZE
            end = upto * width // mmap.PAGESIZE * mmap.PAGESIZE
            if end > start:
                m.madvise(_DONTNEED, start, end - start)
        self._released = upto


def bucket_bits(total: int) -> int:
    """How many leading bits of the id pick the bucket, for ``total`` entries."""
    return max(0, min(16, (total // _BUCKET).bit_length()))


def _buckets(ids: Any, bits: int) -> Any:
    """The bucket of each id of ``ids`` (a contiguous ``S32`` array): its leading ``bits``."""
    np = _np()
    lead = ids.view(">u2")[::16].astype(np.uint16)  # the first two bytes, as a number
    if bits == 0:
        return np.zeros(len(ids), dtype=np.uint16)
    return lead >> np.uint16(16 - bits)


def _order(ids: Any) -> tuple[Any, Any]:
    """The order that sorts ``ids`` (``S32``), stable, without the later repeats of an id;
    and the ids in that order."""
    np = _np()
    lead = ids.view(">u8")[::4].astype(np.uint64)  # the leading 8 bytes, as a number
    order = np.argsort(lead, kind="stable")
    lead = lead[order]
    if len(lead) > 1 and (lead[1:] == lead[:-1]).any():  # shared leading bytes: whole ids
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_ids[1:] != sorted_ids[:-1]
        if not first.all():
            order, sorted_ids = order[first], sorted_ids[first]
        return order, sorted_ids
    return order, ids[order]


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
            keys = _buckets(r.ids[b0 : min(r.size, b0 + _BLOCK)], bits)
            counts += np.bincount(keys, minlength=n_buckets)
    starts = np.zeros(n_buckets + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    out = make(total)
    cursor = starts[:-1].copy()
    while runs:
        r = runs.pop(0)
        for b0 in range(0, r.size, _BLOCK):
            b1 = min(r.size, b0 + _BLOCK)
            keys = _buckets(r.ids[b0:b1], bits)
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
            in_block = np.bincount(keys, minlength=n_buckets)
            first = np.cumsum(in_block) - in_block  # where each bucket starts in the block
            at = cursor[sorted_keys] + (np.arange(b1 - b0) - first[sorted_keys])
            out.ids[at] = r.ids[b0:b1][order]
            out.rows[at] = r.rows[b0:b1][order]
            cursor += in_block
            r.release(b1)
        del r
    kept = 0
    for b in range(n_buckets):
        s, e = int(starts[b]), int(starts[b + 1])
        if s == e:
            continue
        order, sorted_ids = _order(out.ids[s:e])
        sorted_rows = out.rows[s:e][order]
        n = len(order)
        out.ids[kept : kept + n] = sorted_ids
        out.rows[kept : kept + n] = sorted_rows
        kept += n
    out.size = kept
    return out
