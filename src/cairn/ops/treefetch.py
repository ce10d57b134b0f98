"""Reading trees ahead of a walk.

A walk (``cairn.ops.treewalk``) reads one tree per directory, in order, and on an object store
each read waits a round trip: 1,300 directories at 20 ms are 26 s of waiting before a restore
(or ``ls``) has seen them all. ``TreeAhead`` starts reading the subdirectories' trees of every
listing the walk gets on a few threads, so that by the time the walk comes to a directory its
tree is, mostly, there. What is read ahead is bounded by the trees' sizes (``budget`` bytes
decrypted, as the index gives them), whatever the snapshot's; beyond that the walk reads a
tree itself, as it would without this. A tree that fails to be read ahead is read again by the
walk, so its error is the walk's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from cairn.model.node import DIR, Node
from cairn.repo.layout import TREE_BLOB
from cairn.repo.repository import Repository

BUDGET = 32 << 20  # bytes of trees read ahead and not yet taken


class TreeAhead:
    def __init__(
        self,
        repo: Repository,
        threads: int,
        budget: int = BUDGET,
        skip: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.repo = repo
        self.budget = budget
        self.skip = skip  # paths of directories the walk will not read
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="cairn-trees")
        # called from the walk's thread only
        self._ahead: dict[bytes, tuple[Future[bytes], int]] = {}
        self._held = 0  # bytes of the trees read (or being read) ahead

    def __enter__(self) -> TreeAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._ahead.clear()

    def ahead(self, path: bytes, nodes: Iterable[Node]) -> None:
        """Starts reading the trees of the subdirectories among ``nodes`` (the listing of the
        directory at ``path``), as far as the budget goes."""
        lookup = self.repo.index.get
        for node in nodes:
            tree_id = node.subtree
            if node.type != DIR or tree_id is None or tree_id in self._ahead:
                continue
            if self.skip is not None and self.skip(path + b"/" + node.name):
                continue
            at = lookup(tree_id)
            if at is None:
                continue  # the walk's own read says so
            if self._held + at.raw_length > self.budget:
                return
            self._held += at.raw_length
            future = self._pool.submit(self.repo.load_blob, tree_id, TREE_BLOB)
            self._ahead[tree_id] = (future, at.raw_length)

    def load(self, tree_id: bytes) -> bytes:
        """A tree's decrypted bytes: read ahead if it was (waiting for it), else read now."""
        found = self._ahead.pop(tree_id, None)
        if found is not None:
            future, size = found
            self._held -= size
            try:
                return future.result()
            except Exception:  # read again below: the error is then the walk's own
                pass
        return self.repo.load_blob(tree_id, TREE_BLOB)
