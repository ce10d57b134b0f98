"""Which blobs each pack keeps, counted over the packs' columns (``PackColumns``) in numpy
arrays a batch of packs at a time: no Python object per blob (``plan.make_plan`` decides
from the counts).

A blob the snapshots use is kept by one pack only, its home: of the packs that hold it, the
one with the highest share of used bytes, the first of them in the index's order where
several have the same share. Each pack's used share is counted first; then each used blob's
home is the lowest rank (packs sorted by share) among the packs that hold it.

A blob is known by its place among the in-memory index's sorted ids (where the used blobs are
marked, ``UsedBlobs``). Memory, beyond the columns, the index and the marks: 4 bytes a blob
of the packs (its place) while counting, 1 byte after (which blobs are kept), 4 bytes a blob
of the index (its home), and a few numbers a pack.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from cairn.ops.usage import ID, UsedBlobs
from cairn.repo.index import PackColumns
from cairn.repo.pack import BlobRef

BATCH = 1 << 18  # blobs of the packs counted at once, about


def _np() -> ModuleType:
    return importlib.import_module("numpy")


class Tally:
    """For ``packs`` (in the index's order, all in ``used.index``) and the ``used`` blobs, per
    pack (arrays in the packs' order): ``total`` bytes of its blobs, ``used`` bytes of those
    the snapshots use, ``kept`` blobs it keeps and their ``kept_bytes``. ``missing``: used
    blobs in no pack; ``unused_blobs``: how many blobs (each counted once) no snapshot uses."""

    def __init__(self, packs: list[PackColumns], used: UsedBlobs) -> None:
        np = self._np = _np()
        self.packs = packs
        n = len(packs)
        self.total = np.zeros(n, dtype=np.int64)
        self.used = np.zeros(n, dtype=np.int64)
        self.kept = np.zeros(n, dtype=np.int64)
        self.kept_bytes = np.zeros(n, dtype=np.int64)
        self._spans = list(_spans(packs))
        self._masks: list[Any] = []  # per span: which of its blobs are kept
        self._offsets = np.zeros(n, dtype=np.int64)  # a pack's first blob in its span
        self._span_of = np.zeros(n, dtype=np.int64)
        marks = used.marks
        places: list[Any] = []  # per span: each blob's place among the index's ids
        unused = np.zeros(len(marks), dtype=bool)  # the blobs no snapshot uses
        for s, (lo, hi) in enumerate(self._spans):
            counts = self._counts(lo, hi)
            self._offsets[lo:hi] = np.cumsum(counts) - counts
            self._span_of[lo:hi] = s
            ids, lengths = self._columns(lo, hi)
            at = used.index.places(ids)
            if (at < 0).any():
                raise ValueError("a blob of the packs is not in the index")
            hit = marks[at]
            unused[at[~hit]] = True
            self.total[lo:hi] = _sums(np, lengths, counts)
            self.used[lo:hi] = _sums(np, np.where(hit, lengths, 0), counts)
            places.append(at.astype(np.int32 if len(marks) < 1 << 31 else np.int64))
        used.check()  # the places are those the marks are at
        self.unused_blobs = int(unused.sum())
        del unused
        # the home of each used blob: the lowest rank of the packs that hold it
        share = self.used / np.where(self.total == 0, 1, self.total)
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(-share, kind="stable")] = np.arange(n)
        home = np.full(len(marks), n, dtype=np.int64 if n >= 1 << 31 else np.int32)
        for (lo, hi), at in zip(self._spans, places, strict=True):
            ranks = np.repeat(rank[lo:hi], self._counts(lo, hi))
            hit = marks[at]
            np.minimum.at(home, at[hit], ranks[hit].astype(home.dtype))
        nowhere = used.index.ids_at(np.flatnonzero(marks & (home == n))).tobytes()
        self.missing = used.absent | {nowhere[i : i + ID] for i in range(0, len(nowhere), ID)}
        for (lo, hi), at in zip(self._spans, places, strict=True):
            counts = self._counts(lo, hi)
            ranks = np.repeat(rank[lo:hi], counts)
            kept = marks[at] & (home[at] == ranks)
            _, lengths = self._columns(lo, hi, ids=False)
            self.kept[lo:hi] = _sums(np, kept.astype(np.int64), counts)
            self.kept_bytes[lo:hi] = _sums(np, np.where(kept, lengths, 0), counts)
            self._masks.append(kept)
        places.clear()

    def kept_refs(self, i: int) -> list[BlobRef]:
        """The blobs the ``i``-th pack keeps, in its order."""
        c = self.packs[i]
        at = int(self._offsets[i])
        mask = self._masks[int(self._span_of[i])][at : at + len(c)]
        ids, n = c.ids, c.numbers
        return [
            BlobRef(ids[j * ID : j * ID + ID], n[3 * j], n[3 * j + 1], n[3 * j + 2])
            for j in self._np.flatnonzero(mask).tolist()
        ]

    def _columns(self, lo: int, hi: int, ids: bool = True) -> tuple[Any, Any]:
        """The ids (``S32``, unless not asked for) and lengths of the blobs of packs lo:hi."""
        np, packs = self._np, self.packs[lo:hi]
        joined = np.frombuffer(b"".join(c.ids for c in packs), dtype="S32") if ids else None
        numbers = np.frombuffer(b"".join(c.numbers.tobytes() for c in packs), dtype=np.uint32)
        return joined, numbers.reshape(-1, 3)[:, 1].astype(np.int64)

    def _counts(self, lo: int, hi: int) -> Any:
        return self._np.array([len(c) for c in self.packs[lo:hi]], dtype=self._np.int64)


def _spans(packs: list[PackColumns]) -> Iterator[tuple[int, int]]:
    """Runs of consecutive packs of about ``BATCH`` blobs (at least one pack each)."""
    lo, count = 0, 0
    for i, c in enumerate(packs):
        count += len(c)
        if count >= BATCH:
            yield lo, i + 1
            lo, count = i + 1, 0
    if lo < len(packs):
        yield lo, len(packs)


def _sums(np: ModuleType, values: Any, counts: Any) -> Any:
    """``values`` summed pack by pack, a pack's blobs ``counts`` of them in turn."""
    ends = np.cumsum(counts)
    sums = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(values, dtype=np.int64)])
    return sums[ends] - sums[ends - counts]
