"""Rewriting a snapshot's tree without some of its entries: those whose data is lost
(``repair snapshots``) or those matching exclude patterns (``rewrite``). Only the trees on the
way to a removed entry are written anew; every other tree and every data blob stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cairn.core.errors import IntegrityError
from cairn.model.node import DIR, FILE, Node
from cairn.model.snapshot import Summary
from cairn.ops.backup.archiver import save_tree
from cairn.ops.filter_patterns import PatternList
from cairn.ops.treewalk import TreeProblem, read_listing
from cairn.repo.writer import Writer


@dataclass
class _Dir:
    """A directory being rewritten (see ``_rewrite``)."""

    tree: bytes
    path: bytes
    depth: int
    nodes: Iterator[Node]
    owner: Node | None  # its node in the parent directory (None for the root)
    kept: list[Node] = field(default_factory=list)
    changed: bool = False
    lost: bool = False  # its listing cannot be read: it becomes empty


def rewrite_tree(
    writer: Writer,
    tree_id: bytes,
    removed: list[str],
    summary: Summary,
    exclude: PatternList | None = None,
) -> bytes:
    """The id of the tree without damaged entries (the same id when nothing is damaged).
    Entries a tree leaves out (invalid, or a name repeated) are removed too, and a tree out of
    order is written sorted. Iterative: a tree of any depth costs no stack. The paths removed
    are appended to ``removed``.

    With ``exclude``, the entries whose path (``/a/b``, from the snapshot's root) it matches
    are removed instead, a directory with all it holds; damage is then an error
    (IntegrityError: ``repair snapshots`` is the command for it), never a removal.

    ``summary`` counts what the tree now holds, as a backup that read nothing would: its files
    as unchanged, their sizes in ``bytes_total``, the trees written anew as new directories and
    blobs added, the others as unchanged directories."""
    repo = writer.repo

    def shown(p: bytes) -> str:
        return (p or b"/").decode("utf-8", "surrogateescape")

    def open_dir(tid: bytes, p: bytes, depth: int, owner: Node | None) -> _Dir:
        problems: list[TreeProblem] = []
        nodes = read_listing(repo, tid, p, depth, problems.append)
        d = _Dir(tid, p, depth, iter(nodes or ()), owner, lost=nodes is None)
        if problems and exclude is not None:
            raise problems[0].error()
        for problem in problems:
            d.changed = True
            if problem.entry:
                removed.append(f"{shown(problem.path)} ({problem.message})")
            elif nodes is None:
                removed.append(f"{shown(p)} (listing lost)")
        return d

    stack = [open_dir(tree_id, b"", 1, None)]
    result = tree_id
    while stack:
        d = stack[-1]
        node = next(d.nodes, None)
        if node is None:
            stack.pop()
            new_id = d.tree
            if d.lost or d.changed:
                new_id = save_tree(writer, d.kept, summary)
            else:
                summary.dirs_unchanged += 1
            if d.owner is None:
                result = new_id
            else:
                stack[-1].changed |= new_id != d.owner.subtree
                d.owner.subtree = new_id
            continue
        child = d.path + b"/" + node.name
        if exclude is not None and exclude.matches(child):
            removed.append(shown(child))
            d.changed = True
            continue
        if node.type == DIR and node.subtree is not None:
            d.kept.append(node)
            stack.append(open_dir(node.subtree, child, d.depth + 1, node))
            continue
        if node.type == FILE and any(not writer.has_blob(b) for b in node.content):
            if exclude is not None:
                raise IntegrityError(shown(child), "data missing (see `cairn repair snapshots`)")
            removed.append(child.decode("utf-8", "surrogateescape"))
            d.changed = True
            continue
        if node.type == FILE:
            summary.files_unchanged += 1
            summary.bytes_total += node.size
        d.kept.append(node)
    return result
