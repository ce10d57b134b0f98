"""What a prune would do: read the repository (snapshots, then index, then the packs), find
the blobs the snapshots use (their trees read a tree pack at a time), and plan which packs to
keep, repack and delete. Changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace

from cairn.core.errors import CairnError, IntegrityError, ObjectMissing
from cairn.model.snapshot import Snapshot
from cairn.ops.prune.tally import Tally
from cairn.ops.snapshots import read_snapshots
from cairn.ops.usage import UsedBlobs, used_blobs
from cairn.repo import layout
from cairn.repo.index import (
    INDEX_OBJECT_BLOBS,
    BlobIndex,
    PackColumns,
    PackRecord,
    PackRecords,
    blob_count,
)
from cairn.repo.listing import RepoListing, list_repository
from cairn.repo.locks import LockBusy, LockInfo, Locks
from cairn.repo.pack import BlobRef, packs_for
from cairn.repo.packcache import PackCache
from cairn.repo.packer import Spool
from cairn.repo.packlist import stored_pack_infos, stored_packs
from cairn.repo.repository import Repository
from cairn.repo.writer import INDEX_CHECKPOINT_PACKS
from cairn.storage.archive import ObjectInfo
from cairn.storage.metered import LIST_PAGE

# packs read whole at once to be repacked (each a round trip on an object store), held until
# their blobs are copied: at most REPACK_READS + 1 in memory
REPACK_READS = 2


@dataclass
class PruneOptions:
    max_unused: float = 0.65  # repack a pack when more than this share is unused (docs/cost.md)
    max_repack_bytes: int | None = None  # read at most this many bytes of packs to repack
    dry_run: bool = False
    # seconds to wait for backups that were running when the prune condemned its packs
    # before postponing (docs/format.md §12.3)
    max_wait: float = 900.0
    # the repacking writer's packs built in temporary files (cairn.repo.packer)
    spool: Spool | None = None
    repack_reads: int = REPACK_READS


# a pack as the plan holds it: its columns as the index gave them (a record only where made)
Pack = PackRecord | PackColumns


@dataclass
class PrunePlan:
    keep: list[Pack] = field(default_factory=list)
    repack: list[tuple[Pack, list[BlobRef]]] = field(default_factory=list)  # the blobs kept
    delete: list[Pack] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)  # pack name -> size
    sizes: dict[bytes, int] = field(default_factory=dict)  # pack id -> size in the store
    unused: dict[bytes, int] = field(default_factory=dict)  # pack id -> bytes of no kept blob
    missing: set[bytes] = field(default_factory=set)
    # packs to repack that this host keeps copies of (cairn.repo.objectcache): read from
    # them, not from the store
    local: set[bytes] = field(default_factory=set)
    idle: dict[bytes, int] = field(default_factory=dict)  # pack id -> bytes no snapshot uses
    unused_blobs: int = 0  # blobs in the packs that no snapshot uses, each counted once

    def condemned(self) -> list[bytes]:
        ids = [r.info.id for r in self.delete] + [r.info.id for r, _ in self.repack]
        return ids + [p for n in self.orphans if (p := layout.pack_id_of(n)) is not None]


@dataclass
class Touched:
    """What a prune did to packs in each storage class, and the packs it deleted with their
    classes and dates: what its operation record keeps so that a month's bill prices its
    reads, retrieval, early deletions and the storage of what it deleted (docs/format.md
    §8.1). Only where the store gives classes (an object store)."""

    classes: dict[str, dict[str, int]] = field(default_factory=dict)  # get, delete, bytes_down
    deleted: list[ObjectInfo] = field(default_factory=list)


def touched(plan: PrunePlan, infos: dict[str, ObjectInfo]) -> Touched:
    """The packs a prune that ran ``plan`` read back and deleted, by class."""
    out = Touched()
    if not infos:
        return out
    repacked = {
        layout.pack_name(rec.info.id.hex())
        for rec, _ in plan.repack
        if rec.info.id not in plan.local
    }
    for pack_id in plan.condemned():
        info = infos.get(layout.pack_name(pack_id.hex()))
        if info is None:
            continue
        line = out.classes.setdefault(info.storage_class, {"get": 0, "delete": 0, "bytes_down": 0})
        line["delete"] += 1
        if info.name in repacked:
            line["get"] += 1
            line["bytes_down"] += info.size
        out.deleted.append(info)
    return out


@dataclass
class PruneReport:
    snapshots: int = 0
    packs_total: int = 0
    packs_kept: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    repacked_from_copies: int = 0  # of them, read from this host's copies (tree packs)
    orphan_packs: int = 0
    blobs_used: int = 0
    blobs_removed: int = 0
    bytes_total: int = 0
    bytes_freed: int = 0  # stored bytes deleted, net of what repacking wrote again
    bytes_repack_read: int = 0
    bytes_repack_written: int = 0
    unused_bytes_kept: int = 0  # unused parts of packs left in place (below the threshold)
    index_objects_replaced: int = 0
    packs_written: int = 0  # new packs of the repacked blobs (estimated on --dry-run)
    # of them, tree packs: written in the metadata class, not the data packs' storage class
    tree_packs_written: int = 0
    tree_bytes_repack_written: int = 0
    # requests and bytes: estimated on --dry-run, else what the prune command made
    requests: dict[str, int] = field(default_factory=dict)
    # of the estimate, the reads a dry run makes too (the first look at the locks, planning):
    # a dry run that measures its own may put those in their place
    looked: dict[str, int] = field(default_factory=dict)
    postponed: str | None = None
    packs_rescued: int = 0  # condemned, then found in use by a backup that ran meanwhile
    waited: float = 0.0  # seconds spent waiting for backups that started before the deletion
    touched: Touched | None = None  # what a prune did to packs, by class (its record's)
    dry_run: bool = False
    # on a repository with an object lock (ISO time): what was deleted stays, as locked
    # versions, until then at the latest; its space is freed then (docs/objectlock.md)
    freed_after: str | None = None

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        del d["touched"], d["looked"]
        return d


def make_plan(
    records: Mapping[bytes, PackColumns],
    stored: dict[str, int],
    used: UsedBlobs,
    options: PruneOptions,
) -> PrunePlan:
    """Which packs to keep, repack and delete (``tally``: which blobs each pack keeps), every
    blob of ``records`` in the index ``used`` is marked in. The packs stay columns; only those
    repacked get a list of the blobs they keep."""
    plan = PrunePlan()
    present = []
    for pack_id, columns in records.items():
        name = layout.pack_name(pack_id.hex())
        if name in stored:
            present.append(columns)
            plan.sizes[pack_id] = stored[name]
    indexed = {layout.pack_name(p.hex()) for p in records}
    plan.orphans = {
        n: size for n, size in stored.items() if n not in indexed and layout.pack_id_of(n)
    }
    tally = Tally(present, used)
    plan.missing = tally.missing
    plan.unused_blobs = tally.unused_blobs
    kept = tally.kept.tolist()
    not_kept = (tally.total - tally.kept_bytes).tolist()
    idle = (tally.total - tally.used).tolist()
    budget = options.max_repack_bytes
    for i in sorted(range(len(present)), key=lambda i: present[i].info.id):
        columns = present[i]
        pack_id = columns.info.id
        size = plan.sizes[pack_id]
        plan.idle[pack_id] = idle[i]
        # what repacking would free: the blobs this pack does not keep (the whole pack when
        # it keeps none); its magic, salt and header are no more unused than a new pack's
        unused = plan.unused[pack_id] = not_kept[i] if kept[i] else size
        if not kept[i]:
            plan.delete.append(columns)
            continue
        if unused / size > options.max_unused and (budget is None or budget >= size):
            plan.repack.append((columns, tally.kept_refs(i)))
            if budget is not None:
                budget -= size
        else:
            plan.keep.append(columns)
    return plan


def _report_from(plan: PrunePlan, used: UsedBlobs, pack_size: int) -> PruneReport:
    r = PruneReport()
    r.packs_total = len(plan.sizes) + len(plan.orphans)
    r.packs_kept = len(plan.keep)
    r.packs_deleted = len(plan.delete)
    r.packs_repacked = len(plan.repack)
    r.repacked_from_copies = len(plan.local)
    r.orphan_packs = len(plan.orphans)
    r.blobs_used = len(used)
    r.bytes_total = sum(plan.sizes.values()) + sum(plan.orphans.values())
    r.bytes_repack_read = sum(plan.sizes[rec.info.id] for rec, _ in plan.repack)
    r.bytes_repack_written = sum(b.length for _, kept in plan.repack for b in kept)
    deleted = sum(plan.sizes[rec.info.id] for rec in plan.delete) + sum(plan.orphans.values())
    r.bytes_freed = deleted + r.bytes_repack_read - r.bytes_repack_written
    r.unused_bytes_kept = sum(plan.idle[rec.info.id] for rec in plan.keep)
    r.blobs_removed = plan.unused_blobs
    # the repacking writer fills a pack of each blob type, in the plan's order
    by_type = {
        t: packs_for(
            (b.length for rec, kept in plan.repack if rec.info.blob_type == t for b in kept),
            pack_size,
        )
        for t in layout.BLOB_TYPES
    }
    r.packs_written = sum(by_type.values())
    r.tree_packs_written = by_type[layout.TREE_BLOB]
    r.tree_bytes_repack_written = sum(
        b.length
        for rec, kept in plan.repack
        if rec.info.blob_type == layout.TREE_BLOB
        for b in kept
    )
    r.requests = _writes(plan, r)
    return r


def _writes(plan: PrunePlan, r: PruneReport) -> dict[str, int]:
    """A prune's requests besides planning's reads (plan_now adds those, plan_prune the
    looks at the locks): a prune with nothing to delete only takes its lock and removes it.
    One that deletes writes the lock's update (deleting the first), lists the index objects
    and snapshots written meanwhile, reads the packs to repack, writes the new packs and the
    repacking writer's index objects, then the new index (every kept and new pack), deletes
    the index objects it read and the repacking writer's, the condemned packs, the lock."""
    if not (plan.delete or plan.repack or plan.orphans):
        return {"put": 1, "delete": 1, "bytes_down": 0, "bytes_up": 0}
    blobs = sum(len(kept) for _, kept in plan.repack)
    packs = r.packs_written
    repack_index = (
        max(-(-packs // INDEX_CHECKPOINT_PACKS), -(-blobs // INDEX_OBJECT_BLOBS)) if packs else 0
    )
    # the new index as write_index batches it: the kept packs' records, then the new packs'
    counts = [blob_count(rec) for rec in plan.keep]
    counts += [blobs // packs + (i < blobs % packs) for i in range(packs)] if packs else []
    index, batch = 0, 0
    for n in counts:
        batch += n
        if batch >= INDEX_OBJECT_BLOBS:
            index, batch = index + 1, 0
    index += 1 if batch or (counts and not index) else 0
    local = sum(plan.sizes[p] for p in plan.local)
    return {
        "get": r.packs_repacked - len(plan.local),
        "put": 2 + packs + repack_index + index,
        "delete": 2 + repack_index + r.packs_deleted + r.packs_repacked + r.orphan_packs,
        "list": 2,
        "bytes_down": r.bytes_repack_read - local,
        "bytes_up": r.bytes_repack_written,
    }


def _pages(n: int) -> int:
    """LIST requests for a listing of ``n`` names (one for none)."""
    return 1 + max(0, n - 1) // LIST_PAGE


def look(repo: Repository) -> tuple[RepoListing, list[LockInfo]]:
    """A prune's first look: the whole repository in one listing (``repo/listing.py``), and
    the locks it lists, read. Refuses, as a prune does, while another prune or repair runs."""
    listing = list_repository(repo.storage)
    if listing.complete:
        if repo.object_cache is not None:
            repo.object_cache.saw(listing.sizes, listing.started)
        found = Locks(repo).read_all(listed=listing.names(layout.LOCKS))
    else:  # it stopped among too many other objects: the locks are listed apart
        found = Locks(repo).read_all()
    refuse_if_busy(found)
    return listing, found


def plan_prune(repo: Repository, options: PruneOptions) -> tuple[PrunePlan, PruneReport]:
    """What a prune would do now, changing nothing: its plan and its dry-run report (for
    estimates too). Refuses, as a prune does, while another prune or repair runs."""
    listing, found = look(repo)
    planned = plan_now(repo, replace(options, dry_run=True), listing)
    report, q = planned.report, planned.report.requests
    # the first look at the locks (the stale ones deleted; the listing is planning's), and,
    # for a prune that deletes, the second (its own lock and the fresh ones of others, as
    # they are now)
    stale = sum(1 for lk in found if lk.is_stale())
    q["get"] += len(found)
    q["delete"] += stale
    looked = report.looked
    looked["get"] = looked.get("get", 0) + len(found)
    if not listing.complete:
        q["list"] += _pages(len(found))
        looked["list"] = looked.get("list", 0) + _pages(len(found))
    if report.packs_deleted or report.packs_repacked or report.orphan_packs:
        q["list"] += 1
        q["get"] += 1 + len(found) - stale
    return planned.plan, report


def refuse_if_busy(locks: list[LockInfo]) -> None:
    """Raises LockBusy if one of ``locks`` (``Locks.read_all``) is a fresh prune or repair."""
    busy = [lk for lk in locks if not lk.is_stale() and lk.kind in ("prune", "repair")]
    if busy:
        raise LockBusy(f"another {busy[0].describe()} is running; try again later")


@dataclass
class State:
    """What the repository held when a prune looked: snapshots first, then the index objects,
    then the packs. In that order every blob of every snapshot seen is in an index object
    seen (a snapshot is written after the index objects its blobs are in, §9), so a blob
    found in no pack means damage, never a backup that finished meanwhile."""

    snapshots: list[Snapshot]
    records: PackRecords  # pack id -> its index entry (kept as columns)
    index_names: list[str]
    stored: dict[str, int]  # pack name -> size, for every pack in data/
    listed: int = 0  # names listed under data/ (strays included)
    bytes_read: int = 0  # the snapshot and index objects downloaded to know all this
    # pack name -> its class and date, where the store says (object stores)
    infos: dict[str, ObjectInfo] = field(default_factory=dict)


class _Unsettled(Exception):
    """The one listing of the repository saw a backup half done (``repo/listing.py``)."""


def read_state(repo: Repository, seen: RepoListing | None = None) -> State:
    """The repository as a prune plans from it: listed prefix by prefix in the order above, or
    taken from ``seen``, one listing of all of it, if that is consistent (raises _Unsettled
    when an index object it lists names a pack it does not)."""
    listing = read_snapshots(repo, listed=None if seen is None else seen.names(layout.SNAPSHOTS))
    if listing.damaged:
        hex_id, detail = next(iter(listing.damaged.items()))
        raise IntegrityError(
            layout.snapshot_name(hex_id),
            f"{detail}; what it uses is unknown, so nothing was deleted: remove it with "
            f"`cairn forget {hex_id[:8]}` or `cairn repair snapshots`",
        )
    sizes: dict[str, int] = {}
    for attempt in range(3):  # an index object replaced meanwhile: look again
        try:
            records, names = read_index(
                repo, sizes, None if seen is None else seen.names(layout.INDEX)
            )
            break
        except ObjectMissing:
            if seen is not None:
                raise _Unsettled() from None
            if attempt == 2:
                raise
    # strays under data/ are left out, noticed; on an object store the same listing gives each
    # pack's class and date, for the bill (``Touched``)
    if seen is None:
        infos = stored_pack_infos(repo.storage, repo.notice)
        if infos is None:
            stored = stored_packs(repo.storage, repo.notice)
    else:
        infos = stored_pack_infos(repo.storage, repo.notice, seen.infos)
        if infos is None:
            stored = stored_packs(repo.storage, repo.notice, seen.names(layout.DATA))
    if infos is not None:
        stored = {n: i.size for n, i in infos.items()}
    if seen is not None and any(layout.pack_name(p.hex()) not in stored for p in records):
        raise _Unsettled()
    read = listing.bytes_read + sum(sizes.get(n, 0) for n in names)
    return State(listing.snapshots, records, names, stored, len(stored), read, infos or {})


def read_index(
    repo: Repository, sizes: dict[str, int] | None = None, listed: dict[str, int] | None = None
) -> tuple[PackRecords, list[str]]:
    """Every index object's packs, read once, kept as columns (a pack's record made when
    asked); the repository's in-memory index is made from the same columns. ``sizes`` gets
    the size of each index object listed; ``listed``: index/ as a listing already made saw
    it."""
    columns: dict[bytes, PackColumns] = {}
    names = []
    for name, packs in repo.read_index_objects(sizes, listed, columns=True):
        names.append(name)
        for c in packs:
            columns.setdefault(c.info.id, c)
    index = BlobIndex()
    index.add_columns(columns.values())  # in arrays, not a lookup and an entry per blob
    repo.index = index
    return PackRecords(columns), names


def _plan_from(
    repo: Repository, options: PruneOptions, seen: RepoListing | None
) -> tuple[State, PackCache, UsedBlobs, PrunePlan]:
    """The state, the tree packs read, the used blobs and the plan. With ``seen``, raises
    _Unsettled where a blob the snapshots use (a tree among them) is in no index object it
    lists: a backup ended while it was listed, or damage, which the ordered look tells."""
    state = read_state(repo, seen)
    # a tree pack at a time, copied to this host first where the repository keeps copies
    trees = PackCache(
        repo.reader,
        layout.TREE_BLOB,
        state.records,
        fetch=repo.fetch_pack,
        sizes=state.stored,
    )
    try:
        used = used_blobs(repo, state.snapshots, trees=trees)
    except CairnError as e:
        if seen is not None:
            raise _Unsettled() from None
        raise IntegrityError(
            "repository", f"{e}; nothing was deleted: run `cairn check` and `cairn repair`"
        ) from None
    plan = make_plan(state.records.columns, state.stored, used, options)
    if plan.missing:
        if seen is not None:
            raise _Unsettled()
        raise IntegrityError(
            "repository",
            f"{len(plan.missing)} blobs that snapshots use are in no pack; "
            "nothing was deleted: run `cairn check` and `cairn repair`",
        )
    return state, trees, used, plan


@dataclass
class Planned:
    plan: PrunePlan
    state: State
    used: UsedBlobs  # blobs (trees and data) the snapshots of ``state`` use
    report: PruneReport

    @property
    def snapshot_ids(self) -> set[str]:
        return {s.id for s in self.state.snapshots}


def plan_now(repo: Repository, options: PruneOptions, seen: RepoListing | None = None) -> Planned:
    """The plan from ``seen`` (``look``), one listing of the whole repository, where it is
    consistent, else (or without it) from listings prefix by prefix in the safe order."""
    cache = repo.object_cache
    before = cache.reads.copy() if cache is not None else None
    pages = 0 if seen is None else _pages(seen.count)
    if seen is not None and not seen.complete:
        seen = None
    try:
        state, trees, used, plan = _plan_from(repo, options, seen)
    except _Unsettled:
        state, trees, used, plan = _plan_from(repo, options, None)
        seen = None
    if cache is not None:
        plan.local = {
            r.info.id for r, _ in plan.repack if cache.holds(layout.pack_name(r.info.id.hex()))
        }
    report = _report_from(plan, used, repo.config.pack_size)
    # planning's reads: every snapshot, every index object, the tree packs (those of them
    # this host has no copy of, where it keeps copies: what was read of the store); the
    # listings
    if cache is not None and before is not None:
        read = cache.reads - before
        reads = {k: read[k] for k in ("get", "head", "bytes_down")}
    else:
        reads = {
            "get": len(state.index_names) + len(state.snapshots) + trees.requests,
            "bytes_down": trees.bytes_read + state.bytes_read,
        }
    if seen is None:  # (after the one listing, if it came first)
        pages += sum(
            _pages(n) for n in (len(state.snapshots), len(state.index_names), state.listed)
        )
    reads["list"] = pages
    q = report.requests
    for k, v in reads.items():
        q[k] = q.get(k, 0) + v
    report.looked = dict(reads)
    if plan.delete or plan.repack or plan.orphans:  # the index objects read are replaced
        q["delete"] += len(state.index_names)
    report.snapshots = len(state.snapshots)
    report.index_objects_replaced = len(state.index_names)
    report.dry_run = options.dry_run
    return Planned(plan, state, used, report)
