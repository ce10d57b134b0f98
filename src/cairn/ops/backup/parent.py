"""A parent snapshot's trees as what a backup knows of files backed up before (``--parent``).

The walk asks for a directory's files before it walks the directory's subdirectories, so each
listing read here also says where the subdirectories' listings are: a directory costs one tree
read. A file whose inode, size, mtime and ctime match its node in the parent, and whose blobs
are in the index, is not read again, as with the files cache. What the backup reads or confirms
still goes to the files cache, when there is one.
"""

from __future__ import annotations

from cairn.core.errors import CairnError
from cairn.model.node import DIR, FILE, Node
from cairn.ops.treewalk import TreeProblem, load_tree
from cairn.repo.filescache import CachedFile, FilesCache
from cairn.repo.repository import Repository


class ParentFiles:
    def __init__(self, repo: Repository, root: bytes, files_cache: FilesCache | None) -> None:
        self.repo = repo
        self.root = root
        self.cache = files_cache
        self._subtrees: dict[bytes, bytes | None] = {}  # directory -> its tree, found above it

    def lookup(self, directory: bytes) -> tuple[dict[bytes, CachedFile], bytes | None]:
        """The parent's files of a directory; no tree record (none is taken with --parent)."""
        return self.lookup_dir(directory), None

    def lookup_dir(self, directory: bytes) -> dict[bytes, CachedFile]:
        parts = [p for p in directory.split(b"/") if p]
        tree = self._tree_of(parts)
        if tree is None:
            return {}
        out = {}
        prefix = b"/" + b"".join(p + b"/" for p in parts)
        for node in self._load(tree):
            if node.type == DIR:
                self._subtrees[prefix + node.name] = node.subtree
            elif node.type == FILE:
                out[node.name] = CachedFile(
                    node.inode, node.size, node.mtime, node.ctime, node.content
                )
        return out

    def save_dir(
        self,
        directory: bytes,
        entries: dict[bytes, CachedFile],
        previous: dict[bytes, CachedFile],
        complete: bool = True,
        tree: bytes | None = None,
        previous_tree: bytes | None = None,
    ) -> None:
        if self.cache is not None:
            before, before_tree = self.cache.lookup(directory)
            self.cache.save_dir(directory, entries, before, complete, tree, before_tree)

    def _tree_of(self, parts: list[bytes]) -> bytes | None:
        key = b"/" + b"/".join(parts)
        if key in self._subtrees:
            return self._subtrees.pop(key)
        if not parts:
            return self.root
        up = self._tree_of(parts[:-1])
        if up is None:
            return None
        node = next((n for n in self._load(up) if n.name == parts[-1]), None)
        return node.subtree if node is not None and node.type == DIR else None

    def _load(self, tree: bytes) -> list[Node]:
        """A listing of the parent; one that cannot be read only means its files are read."""
        try:
            return load_tree(self.repo, tree, on_problem=_ignore)
        except CairnError:
            return []


def _ignore(problem: TreeProblem) -> None:
    pass
