"""Reading trees and walking them, with every problem handed to the caller.

A tree is read whole and each entry checked (docs/format.md §7.2): invalid entries and later
entries of a name already seen are left out, and reported; so are trees whose names are out of
order, trees that cannot be read, and trees nested deeper than ``MAX_DEPTH``. What to do with a
problem is the caller's: ``fail`` raises it (the default), a command that goes on reports it
and skips what it concerns. Walks are iterative: a tree of any depth costs no stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from cairn.core.errors import CairnError, IntegrityError
from cairn.model.node import DIR, MAX_DEPTH, Node, TreeFormatError, decode_listing
from cairn.ops.treefetch import TreeAhead
from cairn.repo.layout import TREE_BLOB
from cairn.repo.repository import Repository


@dataclass(frozen=True, slots=True)
class TreeProblem:
    tree: bytes  # the id of the tree concerned
    path: bytes  # the entry left out, or the directory whose listing is concerned
    message: str
    entry: bool = False  # one entry was left out (not the whole listing)
    cause: CairnError | None = None  # the error that kept the listing from being read

    def error(self) -> CairnError:
        if self.cause is not None:
            return self.cause
        where = self.path.decode("utf-8", "surrogateescape") or "/"
        return IntegrityError(f"tree {self.tree.hex()}", f"{where}: {self.message}")

    def describe(self) -> str:
        """The message, naming the tree (the path is said apart)."""
        return f"tree {self.tree.hex()[:16]}: {self.message}"


OnProblem = Callable[[TreeProblem], None]


class TreeSource(Protocol):
    """Where a walk gets its trees other than one read each: read ahead of it
    (``cairn.ops.treefetch.TreeAhead``), or a pack at a time (``cairn.repo.packcache``)."""

    def load(self, tree_id: bytes) -> bytes:
        """A tree's decrypted bytes, with the errors of ``Repository.load_blob``."""
        ...


def fail(problem: TreeProblem) -> None:
    raise problem.error()


def load_tree(
    repo: Repository,
    tree_id: bytes,
    path: bytes = b"",
    on_problem: OnProblem = fail,
    source: TreeSource | None = None,
) -> list[Node]:
    """The valid entries of a tree (``path`` is its directory, for messages). A tree that
    cannot be read at all raises (IntegrityError, NotFoundError, ...); everything it leaves out
    goes to ``on_problem``. ``source``: where the tree is read from (else on its own)."""
    data = source.load(tree_id) if source is not None else repo.load_blob(tree_id, TREE_BLOB)
    try:
        listing = decode_listing(data)
    except TreeFormatError as e:
        raise IntegrityError(f"tree {tree_id.hex()}", str(e)) from None
    for bad in listing.bad:
        on_problem(
            TreeProblem(tree_id, path + b"/" + bad.shown(), f"entry left out: {bad.reason}", True)
        )
    if listing.unsorted:
        on_problem(TreeProblem(tree_id, path, "entries are not sorted by name"))
    return listing.nodes


def read_listing(
    repo: Repository,
    tree_id: bytes,
    path: bytes,
    depth: int,
    on_problem: OnProblem = fail,
    source: TreeSource | None = None,
) -> list[Node] | None:
    """``load_tree`` for a directory at ``depth`` (1: the root's entries), with a tree that
    cannot be read, or is nested too deep, handed to ``on_problem`` too: None then."""
    if depth > MAX_DEPTH:
        msg = f"nested deeper than {MAX_DEPTH} levels: not read"
        on_problem(TreeProblem(tree_id, path, msg))
        return None
    try:
        return load_tree(repo, tree_id, path, on_problem, source)
    except CairnError as e:
        on_problem(TreeProblem(tree_id, path, f"cannot be read: {e}", cause=e))
        return None


def walk(
    repo: Repository,
    tree_id: bytes,
    prefix: bytes = b"",
    on_problem: OnProblem = fail,
    depth: int = 1,
    load: Callable[[bytes, bytes, int], list[Node] | None] | None = None,
    ahead: TreeAhead | None = None,
) -> Iterator[tuple[bytes, Node]]:
    """(path, node) for every entry below a tree, depth first, parents before children.
    ``depth`` is that of the tree's entries; ``load(tree_id, path, depth)`` may replace
    ``read_listing`` (returning None for a listing it reported; it should read through
    ``ahead`` when there is one). ``ahead`` reads the trees of every listing's
    subdirectories ahead of the walk."""
    if load is None:

        def load(tid: bytes, path: bytes, d: int) -> list[Node] | None:
            return read_listing(repo, tid, path, d, on_problem, ahead)

    nodes = load(tree_id, prefix, depth)
    if nodes is None:
        return
    if ahead is not None:
        ahead.ahead(prefix, nodes)
    stack: list[tuple[bytes, int, Iterator[Node]]] = [(prefix, depth, iter(nodes))]
    while stack:
        path, d, entries = stack[-1]
        node = next(entries, None)
        if node is None:
            stack.pop()
            continue
        child = path + b"/" + node.name
        yield child, node
        if node.type == DIR and node.subtree is not None:
            below = load(node.subtree, child, d + 1)
            if below and ahead is not None:
                ahead.ahead(child, below)
            if below:
                stack.append((child, d + 1, iter(below)))


def walk_ahead(
    repo: Repository,
    tree_id: bytes,
    prefix: bytes = b"",
    on_problem: OnProblem = fail,
    depth: int = 1,
    threads: int = 0,
) -> Iterator[tuple[bytes, Node]]:
    """``walk``, with the trees read ahead on ``threads`` threads (none: ``walk`` itself)."""
    if not threads:
        yield from walk(repo, tree_id, prefix, on_problem, depth)
        return
    with TreeAhead(repo, threads) as ahead:
        yield from walk(repo, tree_id, prefix, on_problem, depth, ahead=ahead)
