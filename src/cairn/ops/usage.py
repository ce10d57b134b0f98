"""Which blobs the snapshots use: every tree of every snapshot, and every file's content."""

from __future__ import annotations

from collections.abc import Container, Iterable

from cairn.model.node import DIR, FILE
from cairn.model.snapshot import Snapshot
from cairn.ops.snapshots import load_tree
from cairn.repo.repository import Repository


def used_blobs(
    repo: Repository, snapshots: Iterable[Snapshot], known: Container[bytes] = frozenset()
) -> set[bytes]:
    """Tree and data blob ids reachable from ``snapshots``; each tree is read once. Trees in
    ``known`` (with all they reach) are not read again, nor returned.

    Raises (IntegrityError, NotFoundError) if a tree cannot be read: a prune must never decide
    what is unused from a partial picture."""
    used: set[bytes] = set()
    stack = [s.tree for s in snapshots]
    while stack:
        tree_id = stack.pop()
        if tree_id in used or tree_id in known:
            continue
        used.add(tree_id)
        for node in load_tree(repo, tree_id):
            if node.type == DIR and node.subtree is not None:
                stack.append(node.subtree)
            elif node.type == FILE:
                used.update(node.content)
    return used
