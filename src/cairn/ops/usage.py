"""Which blobs the snapshots use: every tree of every snapshot, and every file's content."""

from __future__ import annotations

from collections.abc import Container, Iterable

from cairn.model.node import FILE, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.treewalk import TreeSource, fail, read_listing, walk
from cairn.repo.repository import Repository


def used_blobs(
    repo: Repository,
    snapshots: Iterable[Snapshot],
    known: Container[bytes] = frozenset(),
    trees: TreeSource | None = None,
) -> set[bytes]:
    """Tree and data blob ids reachable from ``snapshots``; each tree is read once (from
    ``trees``: a ``cairn.repo.packcache.PackCache`` reads them a pack at a time). Trees in
    ``known`` (with all they reach) are not read again, nor returned.

    Raises (IntegrityError, NotFoundError) on any problem in a tree: a prune must never decide
    what is unused from a partial picture."""
    used: set[bytes] = set()

    def load(tree_id: bytes, path: bytes, depth: int) -> list[Node] | None:
        if tree_id in used or tree_id in known:
            return None  # read already, with everything below it
        used.add(tree_id)
        return read_listing(repo, tree_id, path, depth, fail, trees)

    for snap in snapshots:
        for _path, node in walk(repo, snap.tree, load=load):
            if node.type == FILE:
                used.update(node.content)
    return used
