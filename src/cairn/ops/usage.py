"""Which blobs the snapshots use: every tree of every snapshot, and every file's content.

They are held as a mark per blob of the repository's in-memory index (one byte each, at the
blob's place among its sorted ids, ``BlobIndex.places``), not a set of ids: a prune of
ten million blobs would otherwise hold ten million ids, about 100 bytes each in a set (32 in
an array). The trees, far fewer, are in a set too: a walk asks about each tree whether it was
read.
"""

from __future__ import annotations

import importlib
from collections.abc import Container, Iterable, Iterator
from types import ModuleType

from cairn.model.node import FILE, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.treewalk import TreeSource, fail, read_listing, walk
from cairn.repo.index import BlobIndex
from cairn.repo.repository import Repository

ID = 32
_GATHER = 32 << 20  # bytes of content ids gathered before they are looked up and marked


def _np() -> ModuleType:
    return importlib.import_module("numpy")


class UsedBlobs:
    """Blob ids (trees and data): ``marks``, which of ``index``'s sorted ids are among them;
    ``absent``, those the index lacks (damage); ``trees``, the trees among them. The marks
    hold until the index is merged again (a blob added to it): then only ``trees`` and
    ``len`` may be asked."""

    def __init__(self, index: BlobIndex, trees: set[bytes] | None = None) -> None:
        self.index = index
        self.trees: set[bytes] = set() if trees is None else trees
        self.absent: set[bytes] = set()
        self.marks = _np().zeros(index.merged(), dtype=bool)
        self._merges = index.merges
        self._count: int | None = None

    @classmethod
    def of(
        cls, index: BlobIndex, blob_ids: Iterable[bytes], trees: Iterable[bytes] = ()
    ) -> UsedBlobs:
        """From ids in any order, repeats allowed (``trees`` are among them too)."""
        used = cls(index, set(trees))
        used.add(b"".join([*blob_ids, *used.trees]))
        return used

    def add(self, joined: bytes | bytearray) -> None:
        """Marks ids given joined (32 bytes each)."""
        np = _np()
        ids = np.frombuffer(joined, dtype="S32")
        at = self.index.places(ids)
        self.check()  # (places merges what was added since)
        found = at >= 0
        self.marks[at[found]] = True
        if not found.all():
            raw = ids[~found].tobytes()
            self.absent.update(raw[i : i + ID] for i in range(0, len(raw), ID))
        self._count = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = int(self.marks.sum()) + len(self.absent)
        return self._count

    def __contains__(self, blob_id: object) -> bool:
        if blob_id in self.trees or blob_id in self.absent:
            return True
        if not isinstance(blob_id, bytes) or len(blob_id) != ID:
            return False
        at = self.index.places(_np().frombuffer(blob_id, dtype="S32"))
        self.check()
        return bool(at[0] >= 0 and self.marks[at[0]])

    def __iter__(self) -> Iterator[bytes]:
        """The ids, those of the index in its order, then those it lacks."""
        np = _np()
        self.check()
        for start in range(0, len(self.marks), 1 << 16):
            at = start + np.flatnonzero(self.marks[start : start + (1 << 16)])
            raw = self.index.ids_at(at).tobytes()
            for i in range(0, len(raw), ID):
                yield raw[i : i + ID]
        yield from self.absent

    def check(self) -> None:
        """Raises RuntimeError if the marks no longer hold (the index was merged since)."""
        if self.index.merges != self._merges:
            raise RuntimeError("the index was merged since the used blobs were marked")


def used_blobs(
    repo: Repository,
    snapshots: Iterable[Snapshot],
    known: Container[bytes] = frozenset(),
    trees: TreeSource | None = None,
) -> UsedBlobs:
    """Tree and data blob ids reachable from ``snapshots``, marked in ``repo.index``; each tree
    is read once (from ``trees``: a ``cairn.repo.packcache.PackCache`` reads them a pack at a
    time). Trees in ``known`` (with all they reach) are not read again, nor returned.

    Raises (IntegrityError, NotFoundError) on any problem in a tree: a prune must never decide
    what is unused from a partial picture."""
    seen: set[bytes] = set()
    used = UsedBlobs(repo.index, seen)
    content = bytearray()  # data blob ids, joined, until they are marked

    def load(tree_id: bytes, path: bytes, depth: int) -> list[Node] | None:
        if tree_id in seen or tree_id in known:
            return None  # read already, with everything below it
        seen.add(tree_id)
        return read_listing(repo, tree_id, path, depth, fail, trees)

    for snap in snapshots:
        for _path, node in walk(repo, snap.tree, load=load):
            if node.type == FILE and node.content:
                content += b"".join(node.content)
                if len(content) >= _GATHER:
                    used.add(content)
                    content = bytearray()
    content += b"".join(seen)
    used.add(content)
    return used
