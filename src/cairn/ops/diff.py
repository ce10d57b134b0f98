"""Comparing two trees: what was added, removed, modified, or changed only in its metadata.

Both trees are walked together, directory by directory, and a subdirectory whose tree id is
the same on both sides is not read at all (its whole content is the same), so comparing two
snapshots of a large, mostly unchanged tree reads only the directories on the way to the
changes. An entry is *modified* when its content differs: a file's list of data blobs (not its
size or times), a symlink's target, a device's number. Its *metadata* is its mode, owner
(ids and names), modification time and extended attributes; atime and ctime are left out
(reading a file, which a backup does, changes its atime; ctime follows every other change).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cairn.model.node import DIR, FILE, Node
from cairn.ops.treewalk import OnProblem, fail, read_listing, walk
from cairn.repo.repository import Repository

ADDED, REMOVED, MODIFIED, METADATA, TYPE = "+", "-", "M", "U", "T"


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # ADDED, REMOVED, MODIFIED, METADATA or TYPE
    path: bytes
    old: Node | None
    new: Node | None


@dataclass
class DiffCounts:
    """How many entries of each kind (files, dirs, others) were added, removed, modified."""

    files_added: int = 0
    files_removed: int = 0
    files_modified: int = 0
    dirs_added: int = 0
    dirs_removed: int = 0
    others_added: int = 0
    others_removed: int = 0
    others_modified: int = 0
    type_changed: int = 0
    metadata_changed: int = 0
    # data blobs of the entries that differ, found on one side only (ids; their sizes are
    # summed at the end from the index)
    blobs_added: set[bytes] = field(default_factory=set, repr=False)
    blobs_removed: set[bytes] = field(default_factory=set, repr=False)

    def count(self, change: Change) -> None:
        node = change.new if change.kind == ADDED else change.old
        assert node is not None
        kind = "files" if node.type == FILE else "dirs" if node.type == DIR else "others"
        if change.kind == ADDED:
            setattr(self, f"{kind}_added", getattr(self, f"{kind}_added") + 1)
        elif change.kind == REMOVED:
            setattr(self, f"{kind}_removed", getattr(self, f"{kind}_removed") + 1)
        elif change.kind == MODIFIED:
            if kind == "files":
                self.files_modified += 1
            else:
                self.others_modified += 1
        elif change.kind == TYPE:
            self.type_changed += 1
        else:
            self.metadata_changed += 1
        if change.kind in (ADDED, MODIFIED, TYPE) and change.new is not None:
            self.blobs_added.update(change.new.content)
        if change.kind in (REMOVED, MODIFIED, TYPE) and change.old is not None:
            self.blobs_removed.update(change.old.content)


def diff_trees(
    repo: Repository,
    old_tree: bytes,
    new_tree: bytes,
    counts: DiffCounts,
    on_problem: OnProblem = fail,
) -> Iterator[Change]:
    """Every change from ``old_tree`` to ``new_tree``, depth first in name order, parents
    before children; the entries below an added or removed directory are added or removed
    too. Each change is counted in ``counts`` (metadata changes of directories included) as
    it is yielded. Iterative: trees of any depth cost no stack."""
    if old_tree == new_tree:
        return
    pairs = _pairs(repo, old_tree, new_tree, b"", 1, on_problem)
    stack: list[tuple[bytes, int, Iterator[tuple[Node | None, Node | None]]]] = [(b"", 1, pairs)]
    while stack:
        path, depth, entries = stack[-1]
        pair = next(entries, None)
        if pair is None:
            stack.pop()
            continue
        old, new = pair
        node = new if new is not None else old
        assert node is not None
        child = path + b"/" + node.name
        for change in _compare(repo, child, depth, old, new, on_problem):
            counts.count(change)
            yield change
        if (
            old is not None
            and new is not None
            and old.type == DIR == new.type
            and old.subtree != new.subtree
            and old.subtree is not None
            and new.subtree is not None
        ):
            below = _pairs(repo, old.subtree, new.subtree, child, depth + 1, on_problem)
            stack.append((child, depth + 1, below))


def _compare(
    repo: Repository,
    path: bytes,
    depth: int,
    old: Node | None,
    new: Node | None,
    on_problem: OnProblem,
) -> Iterator[Change]:
    """The changes of one entry and, when it is added, removed or changes type, of every
    entry below it (a directory whose content changed is compared by the caller)."""
    if old is None or new is None:
        kind, node = (ADDED, new) if old is None else (REMOVED, old)
        assert node is not None
        yield Change(kind, path, old, new)
        yield from _below(repo, path, depth, node, kind, on_problem)
        return
    if old.type != new.type:
        yield Change(TYPE, path, old, new)
        yield from _below(repo, path, depth, old, REMOVED, on_problem)
        yield from _below(repo, path, depth, new, ADDED, on_problem)
        return
    if old.type != DIR and _content(old) != _content(new):
        yield Change(MODIFIED, path, old, new)
    elif _metadata(old) != _metadata(new):
        yield Change(METADATA, path, old, new)


def _below(
    repo: Repository, path: bytes, depth: int, node: Node, kind: str, on_problem: OnProblem
) -> Iterator[Change]:
    if node.type != DIR or node.subtree is None:
        return
    for p, n in walk(repo, node.subtree, path, on_problem, depth + 1):
        yield Change(kind, p, n if kind == REMOVED else None, n if kind == ADDED else None)


def _pairs(
    repo: Repository,
    old_tree: bytes,
    new_tree: bytes,
    path: bytes,
    depth: int,
    on_problem: OnProblem,
) -> Iterator[tuple[Node | None, Node | None]]:
    """The entries of two listings side by side, by name (a listing that cannot be read was
    reported, and counts as empty)."""
    old = {n.name: n for n in read_listing(repo, old_tree, path, depth, on_problem) or ()}
    new = {n.name: n for n in read_listing(repo, new_tree, path, depth, on_problem) or ()}
    for name in sorted(old.keys() | new.keys()):
        yield old.get(name), new.get(name)


def _content(n: Node) -> tuple[object, ...]:
    return (n.content, n.target, n.rdev)


def _metadata(n: Node) -> tuple[object, ...]:
    return (n.mode, n.uid, n.gid, n.user, n.group, n.mtime, n.xattrs)
