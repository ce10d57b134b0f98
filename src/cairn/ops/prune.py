"""Prune: delete the data no snapshot uses, repacking packs that are mostly unused.

Safe while other hosts back up (the protocol is in cairn.repo.locks and docs/format.md):

1. Take a prune lock; refuse if another prune or repair holds a fresh lock.
2. Read every index object, list the packs, read every snapshot and walk its trees.
3. Plan: each used blob is kept in exactly one pack (the fullest one holding it). A pack with no
   kept blob is deleted; a pack whose unused share exceeds ``max_unused`` is repacked (its kept
   blobs are copied into new packs); packs no index lists are orphans of interrupted runs.
4. Repack, then write the packs about to be deleted into the prune lock ("condemned").
5. Look again: if any other fresh lock exists, or a snapshot or index object appeared since
   step 2, a writer was active; index the new packs and postpone the deletions.
6. Otherwise write the new index (every kept blob), delete the index objects read in step 2,
   and only then delete the condemned packs. A crash at any point leaves packs that no index
   lists, which the next prune removes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from cairn.core.errors import CairnError, IntegrityError, ObjectArchived
from cairn.crypto import aead
from cairn.ops.progress import Progress
from cairn.ops.snapshots import load_snapshots
from cairn.ops.usage import used_blobs
from cairn.repo import layout
from cairn.repo.index import PackRecord
from cairn.repo.locks import HeldLock, LockBusy, Locks, new_lock
from cairn.repo.pack import BlobRef, blob_aad
from cairn.repo.packlist import stored_packs
from cairn.repo.repository import Repository


@dataclass
class PruneOptions:
    max_unused: float = 0.65  # repack a pack when more than this share is unused (docs/cost.md)
    max_repack_bytes: int | None = None  # read at most this many bytes of packs to repack
    dry_run: bool = False


@dataclass
class PrunePlan:
    keep: list[PackRecord] = field(default_factory=list)
    repack: list[tuple[PackRecord, list[BlobRef]]] = field(default_factory=list)
    delete: list[PackRecord] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)  # pack name -> size
    sizes: dict[bytes, int] = field(default_factory=dict)  # pack id -> size in the store
    unused: dict[bytes, int] = field(default_factory=dict)  # pack id -> bytes of no kept blob
    missing: set[bytes] = field(default_factory=set)

    def condemned(self) -> list[bytes]:
        ids = [r.info.id for r in self.delete] + [r.info.id for r, _ in self.repack]
        return ids + [p for n in self.orphans if (p := layout.pack_id_of(n)) is not None]


@dataclass
class PruneReport:
    snapshots: int = 0
    packs_total: int = 0
    packs_kept: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    orphan_packs: int = 0
    blobs_used: int = 0
    blobs_removed: int = 0
    bytes_total: int = 0
    bytes_freed: int = 0  # stored bytes deleted, net of what repacking wrote again
    bytes_repack_read: int = 0
    bytes_repack_written: int = 0
    unused_bytes_kept: int = 0  # unused parts of packs left in place (below the threshold)
    index_objects_replaced: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # estimated on --dry-run
    postponed: str | None = None
    dry_run: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def make_plan(
    records: dict[bytes, PackRecord],
    stored: dict[str, int],
    used: set[bytes],
    options: PruneOptions,
) -> PrunePlan:
    plan = PrunePlan()
    present = {}
    for pack_id, record in records.items():
        name = layout.pack_name(pack_id.hex())
        if name in stored:
            present[pack_id] = record
            plan.sizes[pack_id] = stored[name]
    indexed = {layout.pack_name(p.hex()) for p in records}
    plan.orphans = {
        n: size for n, size in stored.items() if n not in indexed and layout.pack_id_of(n)
    }

    def used_share(r: PackRecord) -> float:
        total = sum(b.length for b in r.blobs) or 1
        return sum(b.length for b in r.blobs if b.id in used) / total

    home: dict[bytes, bytes] = {}  # used blob -> the pack that keeps it
    for record in sorted(present.values(), key=used_share, reverse=True):
        for b in record.blobs:
            if b.id in used and b.id not in home:
                home[b.id] = record.info.id
    plan.missing = used - home.keys()
    budget = options.max_repack_bytes
    for pack_id, record in sorted(present.items()):
        kept = [b for b in record.blobs if home.get(b.id) == pack_id]
        size = plan.sizes[pack_id]
        unused = plan.unused[pack_id] = size - sum(b.length for b in kept)
        if not kept:
            plan.delete.append(record)
            continue
        if unused / size > options.max_unused and (budget is None or budget >= size):
            plan.repack.append((record, kept))
            if budget is not None:
                budget -= size
        else:
            plan.keep.append(record)
    return plan


def _report_from(plan: PrunePlan, used: set[bytes], pack_size: int) -> PruneReport:
    r = PruneReport()
    r.packs_total = len(plan.sizes) + len(plan.orphans)
    r.packs_kept = len(plan.keep)
    r.packs_deleted = len(plan.delete)
    r.packs_repacked = len(plan.repack)
    r.orphan_packs = len(plan.orphans)
    r.blobs_used = len(used)
    r.bytes_total = sum(plan.sizes.values()) + sum(plan.orphans.values())
    r.bytes_repack_read = sum(plan.sizes[rec.info.id] for rec, _ in plan.repack)
    r.bytes_repack_written = sum(b.length for _, kept in plan.repack for b in kept)
    deleted = sum(plan.sizes[rec.info.id] for rec in plan.delete) + sum(plan.orphans.values())
    r.bytes_freed = deleted + r.bytes_repack_read - r.bytes_repack_written
    r.unused_bytes_kept = sum(b.length for rec in plan.keep for b in rec.blobs if b.id not in used)
    all_blobs = {b.id for rec in [*plan.keep, *plan.delete] for b in rec.blobs}
    all_blobs |= {b.id for rec, _ in plan.repack for b in rec.blobs}
    r.blobs_removed = len(all_blobs - used)
    new_packs = -(-r.bytes_repack_written // pack_size) if r.bytes_repack_written else 0
    r.requests = {
        "get": r.packs_repacked,
        "put": new_packs + 1 + 2,  # new packs, the new index, the prune lock and its update
        "delete": r.packs_deleted + r.packs_repacked + r.orphan_packs + 2,
        "list": 5,
        "bytes_down": r.bytes_repack_read,
        "bytes_up": r.bytes_repack_written,
    }
    return r


def run_prune(repo: Repository, options: PruneOptions, progress: Progress) -> PruneReport:
    if options.dry_run:
        return plan_prune(repo, options)[1]
    locks = Locks(repo)
    _refuse_if_busy(locks)
    locks.remove_stale()
    with HeldLock(locks, new_lock("prune")) as held:
        return _prune(repo, options, locks, held, progress)


def plan_prune(repo: Repository, options: PruneOptions) -> tuple[PrunePlan, PruneReport]:
    """What a prune would do now, changing nothing: its plan and its dry-run report (for
    estimates too). Refuses, as a prune does, while another prune or repair runs."""
    _refuse_if_busy(Locks(repo))
    planned = _plan_only(repo, replace(options, dry_run=True))
    return planned.plan, planned.report


def _refuse_if_busy(locks: Locks) -> None:
    busy = [lk for lk in locks.read_all() if not lk.is_stale() and lk.kind in ("prune", "repair")]
    if busy:
        raise LockBusy(f"another {busy[0].describe()} is running; try again later")


def _read_state(repo: Repository) -> tuple[dict[bytes, PackRecord], list[str], dict[str, int]]:
    records: dict[bytes, PackRecord] = {}
    index_names = []
    for name, recs in repo.read_index_objects():
        index_names.append(name)
        for r in recs:
            records.setdefault(r.info.id, r)
    stored = stored_packs(repo.storage)  # stray names under data/ are left out, with a warning
    return records, index_names, stored


@dataclass
class _Planned:
    plan: PrunePlan
    index_names: list[str]  # the index objects the plan was made from
    snapshot_ids: set[str]  # the snapshots it protects
    report: PruneReport


def _plan_only(repo: Repository, options: PruneOptions) -> _Planned:
    records, index_names, stored = _read_state(repo)
    repo.load_index()
    snaps = load_snapshots(repo)
    try:
        used = used_blobs(repo, snaps)
    except CairnError as e:
        raise IntegrityError(
            "repository", f"{e}; nothing was deleted: run `cairn check` and `cairn repair`"
        ) from None
    plan = make_plan(records, stored, used, options)
    if plan.missing:
        raise IntegrityError(
            "repository",
            f"{len(plan.missing)} blobs that snapshots use are in no pack; "
            "nothing was deleted: run `cairn check` and `cairn repair`",
        )
    report = _report_from(plan, used, repo.config.pack_size)
    trees = [e for b in used if (e := repo.index.get(b)) and e.pack.blob_type == layout.TREE_BLOB]
    report.requests["get"] += len(index_names) + len(snaps) + len(trees)  # read to plan
    report.requests["bytes_down"] += sum(e.length for e in trees)
    report.snapshots = len(snaps)
    report.index_objects_replaced = len(index_names)
    report.dry_run = options.dry_run
    return _Planned(plan, index_names, {s.id for s in snaps}, report)


def _prune(
    repo: Repository, options: PruneOptions, locks: Locks, held: HeldLock, progress: Progress
) -> PruneReport:
    planned = _plan_only(repo, options)
    plan, report = planned.plan, planned.report
    if not (plan.delete or plan.repack or plan.orphans):
        return report
    new_records = _repack(repo, plan, progress)
    held.update(plan.condemned())
    foreign = [lk for lk in locks.read_all() if not lk.is_stale() and lk.name != held.info.name]
    new_snapshots = set(repo.snapshot_ids()) - planned.snapshot_ids
    ours = set(planned.index_names) | set(repo.written_indexes)
    new_indexes = {n for n, _ in repo.storage.list(layout.INDEX)} - ours
    if foreign or new_snapshots or new_indexes:
        # A writer was active: what it uses may not be in our plan. The repacked packs are
        # indexed already; deleting waits for a quiet moment.
        report.postponed = (
            foreign[0].describe() if foreign else "snapshots or index objects appeared meanwhile"
        )
        report.packs_deleted = report.orphan_packs = report.bytes_freed = 0
        return report
    final = set(repo.write_index(plan.keep + new_records))
    for name in sorted(ours - final):
        repo.storage.delete(name)
    for pack_id in plan.condemned():
        repo.storage.delete(layout.pack_name(pack_id.hex()))
    return report


def _repack(repo: Repository, plan: PrunePlan, progress: Progress) -> list[PackRecord]:
    if not plan.repack:
        return []
    repo.start_writing(remember_packs=True)
    try:
        for record, kept in list(plan.repack):
            name = layout.pack_name(record.info.id.hex())
            try:
                data = repo.storage.read(name)
            except ObjectArchived:
                # a pack in an archive class cannot be read back without a restore request:
                # it stays as it is (unused parts included) rather than be thawed to repack
                plan.repack.remove((record, kept))
                plan.keep.append(record)
                continue
            cipher = aead.derive(repo.key.encryption, record.info.salt, b"pack")
            for b in kept:
                sealed = data[b.offset : b.offset + b.length]
                try:
                    payload = aead.unseal(
                        cipher, b.offset, sealed, blob_aad(record.info.blob_type, b.id)
                    )
                except aead.AuthenticationFailed:
                    raise IntegrityError(
                        name,
                        f"blob {b.id.hex()[:16]} failed authentication; "
                        "nothing was deleted: run `cairn check`",
                    ) from None
                repo.copy_blob(record.info.blob_type, b.id, payload, b.raw_length)
            progress.item_done(name.encode(), len(data))
        repo.flush()
    finally:
        repo.close()
    return list(repo.written_packs)
