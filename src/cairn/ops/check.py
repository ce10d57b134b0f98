"""Checking a repository: structure always, data on request.

Without reading data: every key file and index object parses; every pack an index lists
exists, and its header (read from the pack's end) matches the index; packs no index lists are
reported as leftovers; every snapshot decrypts and every tree it reaches loads; every file's
blobs are in the index. With ``read_data``, every selected pack is read whole: its id must be
the hash of its bytes and every blob must decrypt to its id. Damage is reported as the
snapshots and files it affects. On a repository with an object lock, every snapshot's data
must be locked until the snapshot's lock end (cairn.ops.lockcheck): a shortfall is an error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import blake3

from cairn.core import clock
from cairn.core.errors import CairnError, IntegrityError, ObjectMissing
from cairn.core.overlap import Overlap, Pending
from cairn.crypto.keys import KeyFileError, read_key_file
from cairn.model.node import FILE, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.lockcheck import check_retention
from cairn.ops.progress import Progress
from cairn.ops.snapshots import DAMAGED_HINT, read_snapshots
from cairn.ops.treewalk import TreeProblem, read_listing, walk
from cairn.repo import layout
from cairn.repo.index import PackColumns, PackRecord, PackRecords
from cairn.repo.locks import Locks
from cairn.repo.pack import BlobRef
from cairn.repo.packcache import PackCache
from cairn.repo.packlist import stored_packs
from cairn.repo.repository import Repository
from cairn.storage.objectlock import RetentionRule


@dataclass(frozen=True)
class Subset:
    """Which packs to read: a share (0.1 = 10%) at random, or group ``n`` of ``m``."""

    share: float | None = None
    n: int = 1
    m: int = 1

    @classmethod
    def parse(cls, text: str) -> Subset:
        if text.endswith("%"):
            share = float(text[:-1]) / 100
            if not 0 < share <= 1:
                raise ValueError("a percentage between 0 and 100")
            return cls(share=share)
        n, _, m = text.partition("/")
        sub = cls(n=int(n), m=int(m))
        if not 1 <= sub.n <= sub.m:
            raise ValueError("n/m with 1 <= n <= m")
        return sub

    def select(self, pack_ids: list[bytes]) -> list[bytes]:
        if self.share is not None:
            k = max(1, round(len(pack_ids) * self.share)) if pack_ids else 0
            return random.sample(pack_ids, k)
        return [p for p in pack_ids if int.from_bytes(p[:4], "big") % self.m == self.n - 1]


@dataclass
class Finding:
    severity: str  # "error" or "warning"
    object: str
    message: str


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    snapshots: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    damaged: dict[str, list[str]] = field(default_factory=dict)  # snapshot id -> file paths
    retention_checked: int = 0  # objects whose object lock retention was checked

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def error(self, obj: str, message: str) -> None:
        self.findings.append(Finding("error", obj, message))

    def warning(self, obj: str, message: str) -> None:
        self.findings.append(Finding("warning", obj, message))

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": not self.errors,
            "snapshots": self.snapshots,
            "packs": self.packs,
            "packs_read": self.packs_read,
            "blobs_read": self.blobs_read,
            "bytes_read": self.bytes_read,
            "errors": len(self.errors),
            "findings": [f.__dict__ for f in self.findings],
            "damaged": self.damaged,
            "retention_checked": self.retention_checked,
        }


ATTEMPTS = 3


@dataclass
class _View:
    snapshots: list[Snapshot]
    index_names: set[str]
    records: PackRecords
    stored: dict[str, int]


class Checker:
    def __init__(
        self,
        repo: Repository,
        progress: Progress,
        threads: int = 0,
        data_threads: int = 0,
        lock: RetentionRule | None = None,
    ) -> None:
        """``threads``: pack headers read at once (each a round trip on an object store);
        ``data_threads``: whole packs read at once by --read-data (below 2: one at a time);
        ``lock``: the repository's object lock, whose retentions are checked."""
        self.repo = repo
        self.lock = lock
        self.progress = progress
        self.threads = threads
        self.data_threads = data_threads
        self.report = CheckReport()
        self.bad_blobs: set[bytes] = set()
        self.trees: PackCache | None = None  # the view's trees, read a pack at a time
        # problems in trees, each reported once however many snapshots share the tree
        self._reported: set[tuple[bytes, bytes, str]] = set()

    def run(self, read_data: Subset | None = None) -> CheckReport:
        """Checks one consistent view: the snapshots, then the index objects, then the packs,
        as they were when the check began (objects written later are not its business). If
        it finds damage while a forget or prune removed objects of that view, it looks again
        (at most ``ATTEMPTS`` times): damage is reported only in a view nothing was removed
        from, or after the last attempt."""
        self._keys()
        self._locks()
        found_in_keys = list(self.report.findings)
        selected: list[bytes] | None = None
        for attempt in range(ATTEMPTS):
            self.report = CheckReport(findings=list(found_in_keys))
            self.bad_blobs = set()
            self._reported = set()
            view = self._view()
            # the trees, a pack at a time, kept once read: snapshots share most of them
            self.trees = PackCache(self.repo.reader, layout.TREE_BLOB, view.records, keep=True)
            self._packs(view.records, view.stored)
            if read_data is not None:
                ids = sorted(p for p in view.records if layout.pack_name(p.hex()) in view.stored)
                if selected is None:
                    selected = read_data.select(ids)
                self._read_packs(view, selected)
            self._snapshots(view.snapshots)
            if not self.report.errors or attempt == ATTEMPTS - 1 or self._still(view):
                break
        if self.lock is not None:
            self._retention(view)
        return self.report

    def _retention(self, view: _View) -> None:
        """Every snapshot's data locked until its lock end (trees read already are kept)."""
        assert self.lock is not None
        if self.repo.storage.object_lock is None:  # a copy that cannot lock, a past time
            self.report.warning(
                "object lock",
                "the repository has one; this store (a copy that cannot lock, or the "
                "repository as of a past time) shows no retention: not checked",
            )
            return
        snaps = [s for s in view.snapshots if s.id not in self.report.damaged]
        try:
            found = check_retention(
                self.repo, self.lock, snaps, clock.now(), self.trees, sorted(view.index_names)
            )
        except CairnError as e:
            self.report.error("object lock", f"the retentions could not be checked: {e}")
            return
        self.report.retention_checked = found.objects
        for short in found.shortfalls:
            self.report.error(short.object, short.message())

    def _view(self) -> _View:
        listing = read_snapshots(self.repo)
        for hex_id, detail in listing.damaged.items():
            self.report.error(layout.snapshot_name(hex_id), f"{detail} ({DAMAGED_HINT})")
        for attempt in range(ATTEMPTS):
            try:
                records, names = self._index()
                break
            except ObjectMissing:  # replaced by a prune while we read: read them again
                if attempt == ATTEMPTS - 1:
                    raise
        stored = stored_packs(self.repo.storage, self.report.warning)
        snaps = listing.snapshots
        return _View(snaps, set(names), records, stored)

    def _still(self, view: _View) -> bool:
        """Whether every snapshot and index object of the view still exists."""
        names = {n for n, _ in self.repo.storage.list(layout.INDEX)}
        ids = set(self.repo.snapshot_ids())
        return view.index_names <= names and {s.id for s in view.snapshots} <= ids

    def _keys(self) -> None:
        for name, _ in self.repo.storage.list(layout.KEYS):
            try:
                read_key_file(self.repo.storage.read(name))
            except KeyFileError as e:
                self.report.error(name, str(e))

    def _locks(self) -> None:
        """Locks that cannot be read are ignored by backups and prunes: said, not damage."""

        def unreadable(name: str, why: str) -> None:
            self.report.warning(name, f"lock cannot be read ({why}); backups and prunes ignore it")

        Locks(self.repo).read_all(unreadable)

    def _index(self) -> tuple[PackRecords, list[str]]:
        """Every index object's packs, the first of each pack id, as columns (a pack's record
        is made when it is checked); the in-memory index is made from the same columns."""
        columns: dict[bytes, PackColumns] = {}
        names = [n for n, _ in self.repo.storage.list(layout.INDEX)]
        for name in names:
            try:
                for c in self.repo.read_index_columns(name):
                    columns.setdefault(c.info.id, c)
            except ObjectMissing:
                raise
            except CairnError as e:
                self.report.error(name, str(e))
        # blobs of damaged index objects are missing from the in-memory index as well
        self.repo.index = type(self.repo.index)()
        self.repo.index.add_columns(columns.values())
        return PackRecords(columns), names

    def _packs(self, records: PackRecords, stored: dict[str, int]) -> None:
        indexed = {layout.pack_name(p.hex()): c for p, c in records.columns.items()}
        self.report.packs = len(stored)
        for name in sorted(stored.keys() - indexed.keys()):
            self.report.warning(
                name,
                "no index lists this pack (a backup still writing, or left by an interrupted "
                "run: prune removes it)",
            )

        def header(item: tuple[str, PackColumns]) -> tuple[int, list[BlobRef]] | None:
            name, pack = item
            if name not in stored:
                return None
            _, blob_type, blobs = self.repo.read_pack_header(name, stored[name], pack.info.salt)
            return blob_type, blobs

        self.progress.start("pack headers", len(indexed), None, "packs")
        with Overlap(self.threads, "cairn-headers") as overlap:
            for (name, pack), read in overlap.map(header, sorted(indexed.items())):
                self._check_header(name, pack.record(), read)

    def _check_header(
        self,
        name: str,
        record: PackRecord,
        read: Pending[tuple[int, list[BlobRef]] | None],
    ) -> None:
        try:
            found = read.result()
        except CairnError as e:
            self.report.error(name, str(e))
            self.bad_blobs.update(b.id for b in record.blobs)
            return
        if found is None:
            self.report.error(name, "missing: the index lists it but the store does not have it")
            self.bad_blobs.update(b.id for b in record.blobs)
            return
        blob_type, blobs = found
        extra = set(blobs) - set(record.blobs)
        if blob_type != record.info.blob_type or set(record.blobs) - set(blobs):
            self.report.error(name, "the pack's header does not match the index")
        elif extra:
            self.report.warning(
                name, f"holds {len(extra)} blobs no index lists (left out by repair, or unused)"
            )
        self.progress.item_done(name.encode(), 0)

    def _read_packs(self, view: _View, selected: list[bytes]) -> None:
        """Reads the selected packs whole, ``data_threads`` at a time, each held until checked:
        at most ``data_threads + 1`` packs in memory."""
        readable = [
            (p, layout.pack_name(p.hex()))
            for p in selected
            if p in view.records and layout.pack_name(p.hex()) in view.stored
        ]

        def read(item: tuple[bytes, str]) -> bytes:
            return self.repo.storage.read(item[1])

        size = sum(view.stored[name] for _, name in readable)
        self.progress.start("read data", len(readable), size, "packs")

        with Overlap(self.data_threads, "cairn-packs") as overlap:
            for (pack_id, name), data in overlap.map(read, readable, ahead=self.data_threads):
                try:
                    self._check_pack(view.records[pack_id], view.stored[name], data.result())
                except CairnError as e:
                    self.report.error(name, str(e))

    def _check_pack(self, record: PackRecord, size: int, data: bytes) -> None:
        name = layout.pack_name(record.info.id.hex())
        self.report.packs_read += 1
        self.report.bytes_read += len(data)
        self.progress.bytes_done(len(data))
        self.progress.item_done(name.encode(), len(data))
        if len(data) != size or blake3.blake3(data).digest() != record.info.id:
            self.report.error(name, "content does not match its name (damaged or truncated)")
        for b in record.blobs:
            try:
                self.repo.load_blob_at(record.info, b, data[b.offset : b.offset + b.length])
                self.report.blobs_read += 1
            except IntegrityError as e:
                self.report.error(e.obj, e.detail)
                self.bad_blobs.add(b.id)

    def _snapshots(self, snaps: list[Snapshot]) -> None:
        self.report.snapshots = len(snaps)
        bad_trees: dict[bytes, str] = {}
        for snap in snaps:
            damaged = self._walk(snap.tree, b"", bad_trees)
            if damaged:
                self.report.damaged[snap.id] = damaged

    def _walk(self, tree_id: bytes, path: bytes, bad_trees: dict[bytes, str]) -> list[str]:
        """Damaged files and directories below a tree (trees are checked once, files each
        time). A tree that breaks the format's rules (an invalid entry, a name twice, names out
        of order, nested too deep) is damage too: the entries it concerns are named."""
        damaged: list[str] = []
        reported = self._reported

        def shown(p: bytes) -> str:
            return p.decode("utf-8", "surrogateescape") or "/"

        def problem(p: TreeProblem) -> None:
            damaged.append(shown(p.path))
            if p.entry or p.cause is None:
                if (p.tree, p.path, p.message) not in reported:
                    reported.add((p.tree, p.path, p.message))
                    self.report.error(f"tree {p.tree.hex()[:16]}", f"{shown(p.path)}: {p.message}")
                return
            detail = p.cause.detail if isinstance(p.cause, IntegrityError) else str(p.cause)
            bad_trees[p.tree] = detail
            self.report.error(
                f"tree {p.tree.hex()[:16]}", f"directory {shown(p.path)} cannot be read: {detail}"
            )

        def load(tid: bytes, p: bytes, depth: int) -> list[Node] | None:
            if tid in bad_trees:
                damaged.append(shown(p))
                return None
            if tid in self.bad_blobs:
                cause = IntegrityError("", "it is in a damaged or missing pack")
                problem(TreeProblem(tid, p, cause.detail, cause=cause))
                return None
            return read_listing(self.repo, tid, p, depth, problem, self.trees)

        for child, node in walk(self.repo, tree_id, path, problem, load=load):
            if node.type == FILE:
                bad = [b for b in node.content if b in self.bad_blobs or not self.repo.has_blob(b)]
                if bad:
                    damaged.append(child.decode("utf-8", "surrogateescape"))
                    for b in bad:
                        if not self.repo.has_blob(b) and b not in self.bad_blobs:
                            self.bad_blobs.add(b)
                            self.report.error(f"blob {b.hex()[:16]}", "is not in the index")
        return damaged
