"""Copying snapshots from one repository to another (``cairn copy``).

The destination has its own keys. Every blob crosses decrypted with the source's key and
encrypted with the destination's, and only the blobs the destination lacks are read and
sent. Two cases:

- **Same ids.** A destination made with ``init --copy-chunker-params`` shares the source's
  id key (and chunker), so a blob has the same id in both. A blob the destination's index has
  is not read at all; the others are moved as they are stored (compressed), re-encrypted, and
  trees are copied byte for byte. This is what makes a nightly copy cheap.
- **New ids.** Otherwise a blob's id in the destination is the keyed hash of its data under
  the destination's key: the source's data blobs are read, decompressed and hashed (and
  stored if new), and every tree is written again with the new ids, children first. What is
  learnt is kept in an ``IdMap`` (ops/copy/idmap.py), so a later copy reads only new data.

A snapshot is copied whole or not at all: its blobs are stored and indexed (``Writer.flush``)
before the snapshot object is written. It records the id of the snapshot it copies in
``original`` (docs/format.md §8), which is how a later copy knows it is there already.
Interrupted, a copy leaves the packs it stored to the pack journal of the destination's cache,
and the next copy adopts them (repo/writer.py): nothing is sent twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.core.errors import IntegrityError
from cairn.core.overlap import Overlap
from cairn.crypto import aead
from cairn.model.node import DIR, FILE, encode_tree
from cairn.model.snapshot import Snapshot
from cairn.ops.copy.idmap import IdMap
from cairn.ops.copy.reads import Run, plan_runs, read_run
from cairn.ops.copy.trees import TreeRead, TreeSpool, walk_trees
from cairn.ops.progress import NullProgress, Progress
from cairn.ops.treewalk import TreeProblem
from cairn.repo import layout
from cairn.repo.index import IndexEntry, PackRecord
from cairn.repo.layout import DATA_BLOB, TREE_BLOB
from cairn.repo.pack import open_blob
from cairn.repo.packcache import BUDGET as TREE_BUDGET
from cairn.repo.packcache import PackCache
from cairn.repo.repository import Repository
from cairn.repo.writer import Writer

BATCH_BLOBS = 1 << 16  # data blobs collected from the walk before they are read and sent


@dataclass
class CopyTotals:
    """What a copy moved (for one snapshot, or the whole run)."""

    data_blobs: int = 0  # data blobs sent to the destination
    tree_blobs: int = 0
    blobs_present: int = 0  # blobs the destination had already
    bytes_read: int = 0  # encrypted bytes read from the source's packs
    bytes_added: int = 0  # plaintext bytes of the blobs sent
    bytes_stored: int = 0  # encrypted bytes they take in the destination
    reads: int = 0  # ranged reads of the source's packs

    def add(self, other: CopyTotals) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class CopiedSnapshot:
    source: Snapshot
    copy: Snapshot | None = None  # None: it was there already (``present``)
    present: str | None = None  # the destination's snapshot that is a copy of it already
    totals: CopyTotals = field(default_factory=CopyTotals)
    problems: list[str] = field(default_factory=list)  # tree entries a reader leaves out


def copied_from(snapshots: list[Snapshot]) -> dict[str, str]:
    """Source snapshot id -> the destination's snapshot copied from it (each destination
    snapshot's ``original``), and each destination snapshot's own id -> itself."""
    out = {s.original: s.id for s in snapshots if s.original}
    out.update({s.id: s.id for s in snapshots})
    return out


def present(have: dict[str, str], snap: Snapshot) -> str | None:
    """The destination's snapshot that ``snap`` is, or is a copy of, by ``copied_from``'s map:
    a copy of ``snap``, or the snapshot ``snap`` was itself copied from (a copy going back)."""
    found = have.get(snap.id)
    if found is None and snap.original and have.get(snap.original) == snap.original:
        return snap.original
    return found


class Copier:
    """Copies snapshots from ``src`` into ``writer``'s repository. Trees and blobs copied for
    one snapshot are not read again for the next of the same run."""

    def __init__(
        self,
        src: Repository,
        writer: Writer,
        idmap: IdMap,
        threads: int,
        tree_packs: dict[bytes, PackRecord],
        progress: Progress | None = None,
    ) -> None:
        """``tree_packs``: the source's tree pack records (``load_index(tree_records=...)``),
        so that trees are read a pack at a time; ``threads``: data reads at once."""
        self.src = src
        self.dst = writer.repo
        self.writer = writer
        self.idmap = idmap
        self.threads = threads
        self.progress: Progress = progress or NullProgress()
        self.same_ids = src.key.id_key == self.dst.key.id_key
        self._trees: dict[bytes, bytes] = {}  # source tree -> destination tree, done this run
        # a tree pack is read whole if it fits (they are small: tens of MiB per TiB of data)
        budget = max(TREE_BUDGET, src.config.pack_size + (8 << 20))
        self._tree_source = PackCache(
            src.reader, TREE_BLOB, tree_packs, budget=budget, fetch=src.fetch_pack
        )

    def copy(
        self, snap: Snapshot, parent: str | None, save: Callable[[Snapshot], str]
    ) -> CopiedSnapshot:
        """Copies ``snap``: its trees and data, then the snapshot object (``save`` stores it and
        returns its id), with ``parent`` as its parent in the destination."""
        done = CopiedSnapshot(snap)
        totals = done.totals

        def on_problem(problem: TreeProblem) -> None:
            # a tree copied as it is keeps the entry; one written anew has only valid entries
            fate = "copied as it is" if self.same_ids else "left out of the copy"
            message = f"{problem.message} ({fate})"
            done.problems.append(f"{problem.path.decode('utf-8', 'surrogateescape')}: {message}")
            self.progress.warning(problem.path, message)

        wanted: set[bytes] = set()
        with TreeSpool() as spool:
            for tree in walk_trees(
                self._tree_source, snap.tree, self._trees.__contains__, on_problem
            ):
                if self.same_ids:
                    self._copy_tree_as_is(tree, totals)
                else:
                    spool.add(tree)
                for node in tree.nodes:
                    if node.type == FILE:
                        wanted.update(node.content)
                if len(wanted) >= BATCH_BLOBS:
                    self._copy_data(wanted, totals)
                    wanted = set()
            self._copy_data(wanted, totals)
            if not self.same_ids:
                for tree in spool.children_first():
                    self._write_tree(tree, totals)
        self.writer.flush()
        # the backup's requests were made of the source's store: here the copy's own are in
        # its operation record, and a month's bill would count them twice (docs/cost.md)
        summary = dataclasses.replace(snap.summary, requests={})
        new = dataclasses.replace(
            snap,
            tree=self._trees[snap.tree],
            parent=parent,
            original=snap.id,
            summary=summary,
            id="",
        )
        new.id = save(new)
        done.copy = new
        return done

    # ------------------------------------------------------------------ trees
    def _copy_tree_as_is(self, tree: TreeRead, totals: CopyTotals) -> None:
        self._trees[tree.id] = tree.id
        if self.writer.has_blob(tree.id):
            totals.blobs_present += 1
            return
        saved = self.writer.save_blob(TREE_BLOB, tree.data, tree.id)
        if saved.new:
            totals.tree_blobs += 1
            totals.bytes_added += len(tree.data)
            totals.bytes_stored += saved.stored

    def _write_tree(self, tree: TreeRead, totals: CopyTotals) -> None:
        """The tree with its entries' new ids (those of its data from the map, those of its
        subtrees from the trees written before it)."""
        content = [b for n in tree.nodes if n.type == FILE for b in n.content]
        new_ids = self.idmap.lookup(content) if content else {}
        for node in tree.nodes:
            if node.type == FILE and node.content:
                node.content = [self._translated(new_ids, b, tree) for b in node.content]
            elif node.type == DIR and node.subtree is not None:
                node.subtree = self._trees[node.subtree]
        data = encode_tree(tree.nodes)
        saved = self.writer.save_blob(TREE_BLOB, data)
        self._trees[tree.id] = saved.id
        if saved.new:
            totals.tree_blobs += 1
            totals.bytes_added += len(data)
            totals.bytes_stored += saved.stored
        else:
            totals.blobs_present += 1

    @staticmethod
    def _translated(new_ids: dict[bytes, bytes], blob_id: bytes, tree: TreeRead) -> bytes:
        found = new_ids.get(blob_id)
        if found is None:  # _copy_data maps every data blob of the walk, or raises
            where = tree.path.decode("utf-8", "surrogateescape") or "/"
            raise IntegrityError(f"tree {tree.id.hex()}", f"{where}: blob {blob_id.hex()} lost")
        return found

    # ------------------------------------------------------------------ data
    def _copy_data(self, wanted: set[bytes], totals: CopyTotals) -> None:
        """Sends the data blobs of ``wanted`` that the destination lacks."""
        if not wanted:
            return
        ids = list(wanted)
        if self.same_ids:
            missing = [b for b in ids if not self.writer.has_blob(b)]
        else:
            known = self.idmap.lookup(ids)
            missing = [b for b in ids if not self.writer.has_blob(known.get(b, b"\0"))]
        totals.blobs_present += len(ids) - len(missing)
        if not missing:
            return
        runs = plan_runs((b, self._where(b)) for b in missing)
        self.progress.start("copy", None, sum(r.length for r in runs), "blobs")
        handle = self._send_as_is if self.same_ids else self._send_with_new_ids
        with Overlap(self.threads, "cairn-copy") as overlap:
            for run, pending in overlap.map(handle, runs):
                part, pairs = pending.result()
                totals.add(part)
                if pairs:
                    self.idmap.add(pairs)
                self.progress.bytes_done(run.length)

    def _where(self, blob_id: bytes) -> IndexEntry:
        entry = self.src.index.get(blob_id)
        if entry is None or entry.pack.blob_type != DATA_BLOB:
            raise IntegrityError(
                f"blob {blob_id.hex()}", "is not in the source's index: run `cairn check` on it"
            )
        return entry

    def _send_as_is(self, run: Run) -> tuple[CopyTotals, list[tuple[bytes, bytes]]]:
        """Re-encrypts the run's blobs as they are stored (compressed) into the destination."""
        part = CopyTotals(bytes_read=run.length, reads=1)
        name = layout.pack_name(run.pack.id.hex())
        for ref, sealed in read_run(self.src, run):
            try:
                payload = open_blob(
                    self.src.key.encryption,
                    run.pack.salt,
                    run.pack.blob_type,
                    ref.id,
                    ref.offset,
                    sealed,
                )
            except aead.AuthenticationFailed:
                raise IntegrityError(
                    f"{name} (blob {ref.id.hex()[:16]})", "failed authentication (damaged?)"
                ) from None
            stored = self.writer.copy_blob(DATA_BLOB, ref.id, payload, ref.raw_length)
            if stored:
                part.data_blobs += 1
                part.bytes_added += ref.raw_length
                part.bytes_stored += stored
        return part, []

    def _send_with_new_ids(self, run: Run) -> tuple[CopyTotals, list[tuple[bytes, bytes]]]:
        """Reads the run's blobs (authenticated, checked against their ids), stores those the
        destination lacks under its ids; returns the pairs of ids learnt."""
        part = CopyTotals(bytes_read=run.length, reads=1)
        pairs = []
        for ref, sealed in read_run(self.src, run):
            data = self.src.load_blob_at(run.pack, ref, sealed)
            saved = self.writer.save_blob(DATA_BLOB, data, self.dst.blob_id(data))
            pairs.append((ref.id, saved.id))
            if saved.new:
                part.data_blobs += 1
                part.bytes_added += len(data)
                part.bytes_stored += saved.stored
            else:
                part.blobs_present += 1
        return part, pairs
