"""What a restore (or a dump) goes through: the entries below a snapshot path, in order.

The trees are read as the entries are taken (``treewalk.walk``: depth first, parents before
children, without recursion; what a tree leaves out, and a tree that cannot be read, handed to
``on_problem``), so a restore writes files before the last tree is read. Include and exclude
patterns select entries by their snapshot path: an excluded directory is not read at all, and
a directory that is neither included nor excluded itself comes only once something below it is
selected, right before that.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cairn.model.node import DIR, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.filter_patterns import PatternList
from cairn.ops.snapshots import find_node, split_path
from cairn.ops.treefetch import TreeAhead
from cairn.ops.treewalk import OnProblem, fail, read_listing, walk
from cairn.repo.repository import Repository


@dataclass(slots=True)
class Entry:
    path: bytes  # in the snapshot: b"/home/me/notes.txt"
    parts: tuple[bytes, ...]  # below the directory restored (the target): (b"me", b"notes.txt")
    node: Node


@dataclass(frozen=True)
class Selection:
    include: PatternList = field(default_factory=lambda: PatternList([]))
    exclude: PatternList = field(default_factory=lambda: PatternList([]))

    def of(self, path: bytes) -> bool | None:
        """True: selected; False: left out with everything below; None: only what is below
        may be. As restic: an include line matches all below what it matches, and a directory
        no include line may match something below is not read."""
        if self.exclude.matches(path):
            return False
        if not self.include or self.include.matches(path):
            return True
        return None if self.include.may_hold(path) else False

    def read(self, directory: bytes) -> bool:
        """Whether the listing of ``directory`` may hold something selected."""
        if self.exclude.matches(directory):
            return False
        inc = self.include
        return not inc or inc.matches(directory) or inc.may_hold(directory)


class _Dir:
    """A directory the walk is in: where its entries go."""

    __slots__ = ("held", "parts", "path")

    def __init__(self, path: bytes, parts: tuple[bytes, ...], held: Entry | None) -> None:
        self.path = path
        self.parts = parts
        self.held = held  # the directory's own entry, until something below it is selected


class Planner:
    def __init__(
        self,
        repo: Repository,
        selection: Selection | None = None,
        on_problem: OnProblem = fail,
        tree_threads: int = 0,
    ) -> None:
        self.repo = repo
        self.selection = selection or Selection()
        self.on_problem = on_problem
        self.tree_threads = tree_threads  # threads reading trees ahead of the walk (treefetch)

    def top(self, snap: Snapshot, subpath: str | bytes) -> tuple[Node, bytes]:
        """The node at ``subpath`` (a directory node for the root) and its path: b"" for the
        root, else b"/a/b". Raises NotFoundError for a path the snapshot does not have."""
        node = find_node(self.repo, snap, subpath)
        parts = split_path(subpath)
        return node, b"/" + b"/".join(parts) if parts else b""

    def plan(self, snap: Snapshot, subpath: str | bytes) -> Iterator[Entry]:
        """The entries to restore from ``subpath``: below it for a directory, else the file
        (or link, ...) itself if selected. The path is looked up at once, so a wrong one fails
        before anything is restored; the trees below are read as the entries are taken."""
        return self.entries(*self.top(snap, subpath))

    def entries(self, node: Node, path: bytes) -> Iterator[Entry]:
        """``plan`` from the node ``top`` found at ``path``."""
        if node.type != DIR:
            if self.selection.of(path) is True:
                return iter([Entry(path, (node.name,), node)])
            return iter(())
        if node.subtree is None:
            return iter(())
        return self.below(node.subtree, path, path.count(b"/") + 1)

    def below(self, tree_id: bytes, path: bytes, depth: int) -> Iterator[Entry]:
        """The selected entries below the tree of the directory at ``path`` (b"" for the
        root), whose entries are at ``depth`` (1: the root's)."""
        selection = self.selection
        ahead = None
        if self.tree_threads:
            ahead = TreeAhead(self.repo, self.tree_threads, skip=lambda at: not selection.read(at))
        try:
            yield from self._below(tree_id, path, depth, ahead)
        finally:
            if ahead is not None:
                ahead.close()

    def _below(
        self, tree_id: bytes, path: bytes, depth: int, ahead: TreeAhead | None
    ) -> Iterator[Entry]:
        def listing(tid: bytes, at: bytes, d: int) -> list[Node] | None:
            if d > depth and not self.selection.read(at):
                return None  # excluded, or nothing below it included: it is not read
            return read_listing(self.repo, tid, at, d, self.on_problem, ahead)

        selected = self.selection.of
        stack = [_Dir(path, (), None)]
        walked = walk(self.repo, tree_id, path, self.on_problem, depth, listing, ahead)
        for child, node in walked:
            parent = child[: -len(node.name) - 1]
            while stack[-1].path != parent:
                stack.pop()
            d = stack[-1]
            sel = selected(child)
            if sel is False:
                continue
            entry = Entry(child, (*d.parts, node.name), node)
            if sel is None:
                if node.type == DIR:  # given if something below it is
                    stack.append(_Dir(child, entry.parts, entry))
                continue
            if d.held is not None:
                yield from _release(stack)
            yield entry
            if node.type == DIR:
                stack.append(_Dir(child, entry.parts, None))


def _release(stack: list[_Dir]) -> Iterator[Entry]:
    """The held entries of the directories at the top of the stack, outermost first: something
    below them was selected."""
    i = len(stack)
    while stack[i - 1].held is not None:
        i -= 1
    for d in stack[i:]:
        assert d.held is not None
        yield d.held
        d.held = None
