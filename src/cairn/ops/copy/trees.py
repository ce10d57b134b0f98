"""The trees of a snapshot being copied, read from the source once each, in walk order.

The walk reads every tree below the root that this copy has not seen yet (a tree seen for an
earlier snapshot of the same run was copied whole then: its subtrees are not read again),
parents before children, a tree pack at a time (a night's copy from an object store walks
every tree of the snapshot: read one by one, a GET each). Each tree comes with its decrypted
bytes and its valid entries; entries a reader leaves out (docs/format.md §7.2) are handed to
``on_problem``.

``TreeSpool`` keeps trees for a later pass in a temporary file, not in memory: a copy that
gives data new ids writes each tree only once every blob below it has its new id.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cairn.core.errors import IntegrityError
from cairn.model.node import DIR, MAX_DEPTH, Node, TreeFormatError, decode_listing
from cairn.ops.treewalk import OnProblem, TreeProblem, TreeSource


@dataclass(frozen=True, slots=True)
class TreeRead:
    id: bytes
    path: bytes
    data: bytes
    nodes: list[Node]


def walk_trees(
    source: TreeSource,
    root: bytes,
    seen: Callable[[bytes], bool],
    on_problem: OnProblem,
) -> Iterator[TreeRead]:
    """Every tree below ``root`` (itself included) for which ``seen`` is false, each once,
    parents before children, read from ``source`` (a pack at a time: ``PackCache``). A tree
    that cannot be read is an error: a copy is whole or is not made."""
    if seen(root):
        return
    done: set[bytes] = set()
    stack: list[tuple[bytes, bytes, int]] = [(root, b"", 1)]
    while stack:
        tree_id, path, depth = stack.pop()
        if tree_id in done:
            continue
        done.add(tree_id)
        if depth > MAX_DEPTH:
            raise IntegrityError(f"tree {tree_id.hex()}", f"nested deeper than {MAX_DEPTH}")
        data = source.load(tree_id)
        try:
            listing = decode_listing(data)
        except TreeFormatError as e:
            raise IntegrityError(f"tree {tree_id.hex()}", str(e)) from None
        for bad in listing.bad:
            message = f"entry left out: {bad.reason}"
            on_problem(TreeProblem(tree_id, path + b"/" + bad.shown(), message, True))
        yield TreeRead(tree_id, path, data, listing.nodes)
        for node in reversed(listing.nodes):
            sub = node.subtree
            if node.type == DIR and sub is not None and sub not in done and not seen(sub):
                stack.append((sub, path + b"/" + node.name, depth + 1))


class TreeSpool:
    """Trees kept in a temporary file in walk order, given back children first."""

    def __init__(self) -> None:
        # closed by __exit__
        self._file = tempfile.TemporaryFile(prefix="cairn-copy-trees-")  # noqa: SIM115
        self._places: dict[bytes, tuple[bytes, int, int]] = {}  # id -> path, offset, length
        self._end = 0

    def __enter__(self) -> TreeSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def add(self, tree: TreeRead) -> None:
        os.pwrite(self._file.fileno(), tree.data, self._end)
        self._places[tree.id] = (tree.path, self._end, len(tree.data))
        self._end += len(tree.data)

    def _read(self, tree_id: bytes) -> TreeRead:
        path, offset, length = self._places[tree_id]
        data = os.pread(self._file.fileno(), length, offset)
        return TreeRead(tree_id, path, data, decode_listing(data).nodes)

    def children_first(self) -> Iterator[TreeRead]:
        """Every tree kept, each after all the kept trees below it (a directory that appears
        in two places is walked once, so the reverse of the walk's order is not enough)."""
        done: set[bytes] = set()
        for top in reversed(list(self._places)):
            stack = [top]
            while stack:
                tree_id = stack[-1]
                if tree_id in done:
                    stack.pop()
                    continue
                tree = self._read(tree_id)
                below = [
                    n.subtree
                    for n in tree.nodes
                    if n.type == DIR and n.subtree in self._places and n.subtree not in done
                ]
                if below:
                    stack.extend(b for b in below if b is not None)
                    continue
                done.add(tree_id)
                stack.pop()
                yield tree
