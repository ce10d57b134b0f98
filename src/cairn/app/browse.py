"""A repository kept open for many reads: what a web front end shows of it, page after page.

Opening a repository costs a key derivation, and loading its index reading every index object;
a server cannot pay either per page. A ``Browser`` opens once, keeps the snapshots it has read
(snapshot objects never change: only new ones appear, old ones vanish), and loads the index
again only when a snapshot it is asked about is newer than the index it has (a backup since:
its trees would be missing from the index loaded before it). It keeps the entries of the
directories it listed last, by tree id (a tree never changes either). It is shared by the
server's threads; what it replaces (the index, the caches' entries) it replaces whole.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

from cairn.app.context import Session
from cairn.app.events import Events
from cairn.core.errors import UsageError
from cairn.model.node import DIR, FILE, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.dump import Dumper, DumpSummary
from cairn.ops.excludes import PathMatcher
from cairn.ops.gzipstream import GzipStream
from cairn.ops.snapshots import SnapshotFilter, find_node, read_snapshots
from cairn.ops.treewalk import TreeProblem, load_tree, walk_ahead
from cairn.ops.zipstream import ZipStream, ZipSummary

__all__ = ["FORMATS", "Browser", "Directory", "Node", "Snapshot", "ZipSummary", "safe_path"]

FORMATS = ("raw", "tar", "tar.gz", "zip")  # a file's bytes; a directory as tar, gzipped, zip
SEARCH_LIMIT = 1000  # matches shown of a search by name
TREES_KEPT = 64  # directories' entries kept decoded, the most recently listed


def safe_path(path: str) -> str:
    """A path inside a snapshot as given in a URL: relative ('home/ann'; '' for the root), no
    '..', no NUL. UsageError otherwise: never resolved against anything, but a front end must
    refuse what could mean something else to another tool."""
    if "\0" in path:
        raise UsageError("a path must not contain NUL")
    if path.startswith("/"):
        raise UsageError("a path in a snapshot is given relative to its root")
    if any(part == ".." for part in path.split("/")):
        raise UsageError("a path must not contain '..'")
    return "/".join(p for p in path.split("/") if p and p != ".")


@dataclass
class Directory:
    snapshot: Snapshot
    path: str  # relative to the snapshot's root, '' for the root
    node: Node  # the directory itself (a file: a listing of one)
    entries: list[Node]
    problems: int = 0  # entries of the tree left out (damaged or crafted)


class Browser:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}
        self._damaged: dict[str, str] = {}
        self._indexed: frozenset[str] | None = None  # the snapshots the index was loaded after
        # directories listed lately (tree id -> entries, problems): a tree never changes
        self._trees: OrderedDict[bytes, tuple[list[Node], int]] = OrderedDict()

    @property
    def url(self) -> str:
        return self.session.url

    # ------------------------------------------------------------------ snapshots
    def snapshots(self, flt: SnapshotFilter | None = None) -> list[Snapshot]:
        """The readable snapshots that pass ``flt``, oldest first; one listing of the store,
        and only the snapshots not read before are read."""
        repo = self.session.repo
        ids = set(repo.snapshot_ids())
        with self._lock:
            new = [i for i in ids if i not in self._snapshots and i not in self._damaged]
        listing = read_snapshots(repo, new) if new else None
        with self._lock:
            if listing is not None:
                self._snapshots.update((s.id, s) for s in listing.snapshots)
                self._damaged.update(listing.damaged)
            snaps = [s for i, s in self._snapshots.items() if i in ids]
        snaps.sort(key=lambda s: (s.time, s.id))
        return [s for s in snaps if flt is None or flt.matches(s)]

    def snapshot(self, ref: str) -> Snapshot:
        """The snapshot ``ref`` (``latest``, an id or a unique prefix), with an index that
        holds its trees."""
        snaps = self.snapshots()
        if not snaps:
            raise UsageError("the repository has no snapshots")
        if ref == "latest":
            snap = snaps[-1]
        else:
            if not ref or any(c not in "0123456789abcdef" for c in ref):
                raise UsageError(f"{ref!r} is not a snapshot id")
            match = [s for s in snaps if s.id.startswith(ref)]
            if len(match) != 1:
                raise UsageError(
                    f"no snapshot {ref}" if not match else f"snapshot prefix {ref} is ambiguous"
                )
            snap = match[0]
        self._index_for(snap)
        return snap

    def _index_for(self, snap: Snapshot) -> None:
        with self._lock:
            if self._indexed is not None and snap.id in self._indexed:
                return
            known = frozenset(self._snapshots)
            self.session.repo.load_index()  # after the snapshots: it covers them
            self._indexed = known

    # ------------------------------------------------------------------ reading a snapshot
    def directory(self, ref: str, path: str) -> Directory:
        """The entries of the directory ``path`` of snapshot ``ref`` (one level)."""
        snap = self.snapshot(ref)
        path = safe_path(path)
        repo = self.session.repo
        node = find_node(repo, snap, path)
        listing = Directory(snap, path, node, [])
        if node.type != DIR or node.subtree is None:
            listing.entries = [node]
            return listing

        with self._lock:
            cached = self._trees.get(node.subtree)
            if cached is not None:
                self._trees.move_to_end(node.subtree)
        if cached is None:
            problems: list[TreeProblem] = []
            entries = load_tree(repo, node.subtree, b"/" + path.encode(), problems.append)
            cached = (entries, len(problems))
            with self._lock:
                self._trees[node.subtree] = cached
                while len(self._trees) > TREES_KEPT:
                    self._trees.popitem(last=False)
        listing.entries, listing.problems = cached
        return listing

    def search(
        self, ref: str, pattern: str, events: Events
    ) -> tuple[Snapshot, list[tuple[bytes, Node]]]:
        """The entries of snapshot ``ref`` whose path matches ``pattern`` (as `cairn find`
        matches: a name, a glob, or a path with '/'), the first ``SEARCH_LIMIT`` of them."""
        matcher = PathMatcher([pattern])
        if not matcher:
            raise UsageError("search needs a non-empty pattern")
        snap = self.snapshot(ref)

        def report(problem: TreeProblem) -> None:
            events.warning(problem.path or b"/", problem.describe())

        hits: list[tuple[bytes, Node]] = []
        walk = walk_ahead(
            self.session.repo, snap.tree, b"", report, threads=self.session.defaults.tree_threads
        )
        for path, node in walk:
            if matcher.matches(path):
                hits.append((path, node))
                if len(hits) >= SEARCH_LIMIT:
                    break
        return snap, hits

    def download(
        self,
        ref: str,
        path: str,
        fmt: str,
        output: Callable[[Node], AbstractContextManager[BinaryIO]],
        events: Events,
    ) -> DumpSummary | ZipSummary:
        """Writes the file at ``path`` as its bytes (``raw``), or the directory as a tar or a
        zip stream, to what ``output`` opens (given the node, once it is found: a wrong path
        or format fails before anything is written)."""
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")
        snap = self.snapshot(ref)
        path = safe_path(path)
        defaults = self.session.defaults
        dumper = Dumper(
            self.session.repo,
            events,
            workers=max(4, defaults.restore_threads),
            tree_threads=defaults.tree_threads,
        )
        node, at = dumper.find(snap, "/" + path)
        if (node.type == FILE) != (fmt == "raw"):
            what = "a file downloads as raw" if node.type == FILE else "a directory as tar or zip"
            raise UsageError(f"{path or '/'}: {what}")
        with output(node) as out:
            if fmt == "zip":
                archive = ZipStream(out)
                dumper.write(node, at, out, archive)
                return archive.summary
            if fmt == "tar.gz":
                with GzipStream(out) as z:
                    return dumper.write(node, at, z)  # type: ignore[arg-type]
            return dumper.write(node, at, out)
