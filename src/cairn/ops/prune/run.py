"""Carrying out a prune while other hosts back up (docs/format.md §12.3).

1. Take a prune lock; refuse if another prune or repair holds a fresh one.
2. Plan (``plan.plan_now``): snapshots, then index objects, then packs; the used blobs; which
   packs to keep, repack and delete, and the orphans no index object lists.
3. Condemn: write every pack to be deleted or repacked, and every orphan, into the prune
   lock. A backup that takes its lock after this sees them, and neither re-uses nor adopts
   them.
4. Wait for the writers that may not have seen them: every backup whose lock is there at the
   first look after step 3, until that lock is gone (finished, or stale: a writer whose lock
   went stale writes nothing more). Another prune or repair, or a wait past ``max_wait``:
   postpone, having changed nothing.
5. Rescue: read the snapshots and index objects written since step 2. A condemned pack that
   one of them needs (it holds a blob of a new snapshot that no kept pack holds, or a new
   index object lists it) is kept.
6. Repack what is still to be repacked; an index object for the new packs.
7. New index objects for every kept pack and the new ones; then the index objects read in
   step 2, and the repack's, are deleted.
8. Delete the condemned packs, then the lock.

Backups never wait for a prune, and a prune waits only for backups that were already running
when it condemned its packs, so it finishes while backups keep coming.
"""

from __future__ import annotations

import time
from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass

from cairn.core import clock
from cairn.core.errors import CairnError, IntegrityError, ObjectArchived
from cairn.core.overlap import Overlap
from cairn.crypto import aead
from cairn.ops.progress import Progress
from cairn.ops.prune.plan import (
    Pack,
    Planned,
    PruneOptions,
    PruneReport,
    look,
    plan_now,
    touched,
)
from cairn.ops.snapshots import read_snapshots
from cairn.ops.usage import used_blobs
from cairn.repo import layout
from cairn.repo.index import PackRecord
from cairn.repo.listing import RepoListing
from cairn.repo.locks import HeldLock, LockInfo, Locks, new_lock
from cairn.repo.pack import BlobRef, blob_aad
from cairn.repo.packcache import PackCache
from cairn.repo.repository import Repository

REPACK_UPLOADS = 2  # packs the repacking writer uploads at once

# What the prune is doing, for progress and for tests that hold it between steps:
# "planned", "condemned", "looked" (the first look at the locks after the condemnation),
# "waiting" (detail: who), "waited", "rescued", "repacked", "indexed", "deleted"
PruneSteps = Callable[[str, str], None]
POLL_FIRST, POLL_MAX = 0.2, 5.0  # seconds between looks at the locks while waiting


class _Postpone(Exception):
    pass


def run_prune(
    repo: Repository,
    options: PruneOptions,
    progress: Progress,
    on_step: PruneSteps | None = None,
) -> PruneReport:
    # one look at the whole repository, its locks read (a LIST is billed as a PUT, and on B2
    # at ten times a GET): step 1 takes the locks from it, step 2 the rest (plan_now checks
    # that it is consistent, and lists again prefix by prefix where it is not)
    seen, found = look(repo)
    if options.dry_run:
        return plan_now(repo, options, seen).report
    locks = Locks(repo)
    locks.remove_stale(found)
    with HeldLock(locks, new_lock("prune")) as held:
        repo.write_guard = held.check_fresh
        try:
            return _Prune(repo, options, locks, held, progress, on_step, seen).run()
        finally:
            repo.write_guard = None


@dataclass
class _Prune:
    repo: Repository
    options: PruneOptions
    locks: Locks
    held: HeldLock
    progress: Progress
    on_step: PruneSteps | None
    seen: RepoListing | None = None

    def step(self, name: str, detail: str = "") -> None:
        if self.on_step is not None:
            self.on_step(name, detail)

    def run(self) -> PruneReport:
        planned = plan_now(self.repo, self.options, self.seen)
        plan, report = planned.plan, planned.report
        self.step("planned")
        if not (plan.delete or plan.repack or plan.orphans):
            return report
        self.held.update(plan.condemned())
        self.step("condemned")
        t0 = clock.monotonic()
        try:
            self._wait_for_writers()
            report.waited = clock.monotonic() - t0
            self.step("waited")
            report.packs_rescued = self._rescue(planned)
        except _Postpone as e:
            report.waited = clock.monotonic() - t0
            report.postponed = str(e)
            report.packs_deleted = report.packs_repacked = report.orphan_packs = 0
            report.repacked_from_copies = 0
            report.bytes_freed = report.bytes_repack_read = report.bytes_repack_written = 0
            return report
        self.step("rescued", str(report.packs_rescued))
        _recount(planned)
        new_records, repack_index = _repack(self.repo, planned, self.progress, self.options)
        report.packs_written = len(new_records)
        report.tree_packs_written = sum(
            1 for r in new_records if r.info.blob_type == layout.TREE_BLOB
        )
        self.step("repacked")
        ours = set(planned.state.index_names) | set(repack_index)
        final = set(self.repo.write_index(plan.keep + new_records))
        for name in sorted(ours - final):
            self.repo.storage.delete(name)
        self.step("indexed")
        for pack_id in plan.condemned():
            self.held.check_fresh()  # backups must still see the condemned list
            self.repo.storage.delete(layout.pack_name(pack_id.hex()))
        self.step("deleted")
        report.touched = touched(plan, planned.state.infos)
        return report

    def _wait_for_writers(self) -> None:
        """Until every writer that held a lock at the first look after the condemnation is
        done; raises _Postpone if another prune or repair runs, or the wait is too long."""
        first = self._others()
        self.step("looked", str(len(first)))
        rivals = [lk for lk in first if lk.kind in ("prune", "repair")]
        if rivals:
            raise _Postpone(f"another {rivals[0].describe()} is running")
        waiting = {lk.holder: lk for lk in first}
        deadline = clock.monotonic() + self.options.max_wait
        pause = POLL_FIRST
        while waiting:
            names = ", ".join(f"{lk.user}@{lk.host} (pid {lk.pid})" for lk in waiting.values())
            self.step("waiting", names)
            if clock.monotonic() >= deadline:
                raise _Postpone(
                    f"{len(waiting)} backups that started before the deletion still run "
                    f"({names}) after {self.options.max_wait:.0f} s"
                )
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX)
            current = {lk.holder for lk in self._others()}
            waiting = {h: lk for h, lk in waiting.items() if h in current}

    def _others(self) -> list[LockInfo]:
        return [
            lk
            for lk in self.locks.read_all()
            if not lk.is_stale() and lk.holder != self.held.info.holder
        ]

    def _rescue(self, planned: Planned) -> int:
        """Keeps the condemned packs that snapshots and index objects written since the plan
        need (by backups that started before the condemnation). Returns how many."""
        repo, plan = self.repo, planned.plan
        condemned = set(plan.condemned())
        ours = set(planned.state.index_names)
        rescued: set[bytes] = set()
        written: dict[bytes, PackRecord] = {}  # the packs of the index objects written since
        # snapshots first, then index objects: a snapshot seen has its index objects seen (a
        # backup that started after the condemnation and ends meanwhile is then read whole)
        new_ids = set(repo.snapshot_ids()) - planned.snapshot_ids
        for name, _ in repo.storage.list(layout.INDEX):
            if name in ours:
                continue
            try:
                records = repo.read_index_object(name)
            except CairnError as e:
                raise _Postpone(f"{name} written meanwhile cannot be read ({e})") from None
            for r in records:
                written.setdefault(r.info.id, r)
                repo.index.add_pack(r)
                if r.info.id in condemned:
                    rescued.add(r.info.id)
        listing = read_snapshots(repo, sorted(new_ids))
        if listing.damaged:
            damaged = next(iter(listing.damaged))
            raise _Postpone(f"snapshot {damaged[:8]}, written meanwhile, is damaged")
        # the plan's packs first, as they were read (their records made only where asked)
        trees = PackCache(
            repo.reader,
            layout.TREE_BLOB,
            ChainMap(planned.state.records, written),
            fetch=repo.fetch_pack,
        )
        try:
            extra = used_blobs(repo, listing.snapshots, known=planned.used.trees, trees=trees)
        except CairnError as e:
            raise _Postpone(f"a snapshot written meanwhile cannot be read ({e})") from None
        for blob_id in extra:
            entry = repo.index.get(blob_id)
            if entry is None:
                raise _Postpone(f"blob {blob_id.hex()[:16]} of a new snapshot is in no pack")
            if entry.pack.id in condemned:
                rescued.add(entry.pack.id)
        _keep(planned, rescued)
        return len(rescued)


def _keep(planned: Planned, rescued: set[bytes]) -> None:
    """Moves rescued packs out of the plan's condemned lists."""
    plan = planned.plan
    if not rescued:
        return
    plan.keep += [r for r in plan.delete if r.info.id in rescued]
    plan.keep += [r for r, _ in plan.repack if r.info.id in rescued]
    plan.delete = [r for r in plan.delete if r.info.id not in rescued]
    plan.repack = [(r, k) for r, k in plan.repack if r.info.id not in rescued]
    # a rescued orphan is listed by an index object written meanwhile, which stays
    plan.orphans = {
        n: size for n, size in plan.orphans.items() if layout.pack_id_of(n) not in rescued
    }


def _recount(planned: Planned) -> None:
    """The report's figures for the plan as it is now carried out."""
    plan, r = planned.plan, planned.report
    r.packs_kept = len(plan.keep)
    r.packs_deleted = len(plan.delete)
    r.packs_repacked = len(plan.repack)
    plan.local &= {rec.info.id for rec, _ in plan.repack}
    r.repacked_from_copies = len(plan.local)
    r.orphan_packs = len(plan.orphans)
    r.bytes_repack_read = sum(plan.sizes[rec.info.id] for rec, _ in plan.repack)
    r.bytes_repack_written = sum(b.length for _, kept in plan.repack for b in kept)
    deleted = sum(plan.sizes[rec.info.id] for rec in plan.delete) + sum(plan.orphans.values())
    r.bytes_freed = deleted + r.bytes_repack_read - r.bytes_repack_written


def _repack(
    repo: Repository, planned: Planned, progress: Progress, options: PruneOptions
) -> tuple[list[PackRecord], list[str]]:
    """Copies the kept blobs of the packs to repack into new packs; returns their records and
    the index objects that list them."""
    plan = planned.plan
    if not plan.repack:
        return [], []

    def read(item: tuple[Pack, list[BlobRef]]) -> bytes:
        return repo.storage.read(layout.pack_name(item[0].info.id.hex()))

    reads = options.repack_reads
    total = sum(plan.sizes[rec.info.id] for rec, _ in plan.repack)
    progress.start("repack", len(plan.repack), total, "packs")
    with (
        repo.writer(uploads=REPACK_UPLOADS, remember_packs=True, spool=options.spool) as writer,
        Overlap(reads if reads > 1 else 0, "cairn-repack") as overlap,
    ):
        packs = overlap.map(read, list(plan.repack), ahead=reads)
        for (record, kept), reading in packs:
            name = layout.pack_name(record.info.id.hex())
            try:
                data = reading.result()
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
                writer.copy_blob(record.info.blob_type, b.id, payload, b.raw_length)
            progress.item_done(name.encode(), len(data))
            progress.bytes_done(len(data))
        writer.flush()
    _recount(planned)
    return list(writer.written_packs), list(writer.written_indexes)
