"""Which blobs the snapshots use: every tree of every snapshot, and every file's content.

The ids are held in a sorted numpy array (32 bytes a blob, no Python object each): a prune
of ten million blobs would otherwise hold a set of ten million ids, about 100 bytes each.
The trees, far fewer, are in a set too: a walk asks about each tree whether it was read.
"""

from __future__ import annotations

import importlib
from collections.abc import Container, Iterable, Iterator
from types import ModuleType
from typing import Any

from cairn.model.node import FILE, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.treewalk import TreeSource, fail, read_listing, walk
from cairn.repo.repository import Repository

ID = 32
_COMPACT = 32 << 20  # bytes of content ids gathered before their copies are dropped
_SEARCH = 1 << 18  # ids looked up in one sorted batch


def _np() -> ModuleType:
    return importlib.import_module("numpy")


class UsedBlobs:
    """Blob ids (trees and data) in ``ids``, a sorted array of ``S32`` without repeats; the
    trees among them in ``trees``."""

    def __init__(self, ids: Any, trees: set[bytes] | None = None) -> None:
        self.ids = ids
        self.trees: set[bytes] = set() if trees is None else trees
        self._keys: Any = None

    @classmethod
    def of(cls, blob_ids: Iterable[bytes], trees: Iterable[bytes] = ()) -> UsedBlobs:
        """From ids in any order, repeats allowed (``trees`` are among them too)."""
        trees = set(trees)
        np = _np()
        joined = b"".join([*blob_ids, *trees])
        return cls(unique_ids(np, np.frombuffer(joined, dtype="S32")), trees)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, blob_id: object) -> bool:
        if blob_id in self.trees:
            return True
        if not isinstance(blob_id, bytes) or len(blob_id) != ID or not len(self.ids):
            return False
        i = int(self.ids.searchsorted(blob_id))
        return i < len(self.ids) and self.ids[i] == blob_id.rstrip(b"\0")

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.ids), _SEARCH):
            raw = self.ids[start : start + _SEARCH].tobytes()
            for i in range(0, len(raw), ID):
                yield raw[i : i + ID]

    def positions(self, ids: Any) -> Any:
        """For an array of ids (``S32``, any order): each one's place in ``self.ids``, or -1.

        Searched in sorted batches by the ids' leading 8 bytes as unsigned integers: a search
        for ids in their own (random) order misses the cache at nearly every step, and took
        five times as long for ten million ids in ten million. Where two ids share those bytes
        the whole ids are searched."""
        np = _np()
        out = np.full(len(ids), -1, dtype=np.int64)
        if not len(self.ids) or not len(ids):
            return out
        if self._keys is None:
            self._keys = leading(np, self.ids)
        keys, last = self._keys, len(self.ids) - 1
        for start in range(0, len(ids), _SEARCH):
            part = ids[start : start + _SEARCH]
            want = leading(np, part)
            order = np.argsort(want)
            at = np.empty(len(part), dtype=np.int64)
            at[order] = np.minimum(keys.searchsorted(want[order]), last)
            found = self.ids[at] == part
            shared = ~found & (keys[at] == want)
            if shared.any():
                which = np.flatnonzero(shared)
                again = np.minimum(self.ids.searchsorted(part[which]), last)
                at[which] = again
                found[which] = self.ids[again] == part[which]
            out[start : start + len(part)] = np.where(found, at, -1)
        return out


def leading(np: ModuleType, ids: Any) -> Any:
    """The leading 8 bytes of each id of an ``S32`` array, as unsigned integers that sort as
    the ids do."""
    raw = np.ascontiguousarray(ids).view(np.uint8).reshape(-1, ID)
    return raw[:, :8].copy().view(">u8").ravel().astype(np.uint64)


def unique_ids(np: ModuleType, ids: Any) -> Any:
    """``ids`` (``S32``) sorted, each once. Sorted by their leading 8 bytes as integers (a
    sort of the whole ids as strings took six times as long), then the few runs of ids that
    share those bytes but differ sorted whole."""
    if not len(ids):
        return np.empty(0, dtype="S32")
    keys = leading(np, ids)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    ids = ids[order]
    del order
    same = np.flatnonzero(keys[1:] == keys[:-1])
    mixed = same[ids[same + 1] != ids[same]]
    for at in np.unique(keys[mixed]).tolist():  # different ids with the same leading bytes
        lo, hi = int(keys.searchsorted(at)), int(keys.searchsorted(at, side="right"))
        ids[lo:hi] = np.sort(ids[lo:hi])
    keep = np.ones(len(ids), dtype=bool)
    keep[same + 1] = ids[same + 1] != ids[same]
    return ids[keep]


def used_blobs(
    repo: Repository,
    snapshots: Iterable[Snapshot],
    known: Container[bytes] = frozenset(),
    trees: TreeSource | None = None,
) -> UsedBlobs:
    """Tree and data blob ids reachable from ``snapshots``; each tree is read once (from
    ``trees``: a ``cairn.repo.packcache.PackCache`` reads them a pack at a time). Trees in
    ``known`` (with all they reach) are not read again, nor returned.

    Raises (IntegrityError, NotFoundError) on any problem in a tree: a prune must never decide
    what is unused from a partial picture."""
    np = _np()
    seen: set[bytes] = set()
    content = bytearray()  # data blob ids, joined
    held: Any = np.empty(0, dtype="S32")  # those gathered earlier, sorted, each once

    def load(tree_id: bytes, path: bytes, depth: int) -> list[Node] | None:
        if tree_id in seen or tree_id in known:
            return None  # read already, with everything below it
        seen.add(tree_id)
        return read_listing(repo, tree_id, path, depth, fail, trees)

    for snap in snapshots:
        for _path, node in walk(repo, snap.tree, load=load):
            if node.type == FILE and node.content:
                content += b"".join(node.content)
                # a file in many snapshots is listed again wherever its directory changed:
                # its ids are kept once whenever those gathered outgrow the ids held
                if len(content) >= max(_COMPACT, len(held) * ID):
                    held = _joined(np, held, content)
                    content = bytearray()
    content += b"".join(seen)
    return UsedBlobs(_joined(np, held, content), seen)


def _joined(np: ModuleType, held: Any, more: bytearray) -> Any:
    added = np.frombuffer(more, dtype="S32")
    return unique_ids(np, np.concatenate([held, added]) if len(held) else added)
