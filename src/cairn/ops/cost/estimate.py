"""What backups, restores and prunes cost, from the requests and bytes they make (or, for dry
runs, would make). Metadata (config, keys, index, snapshots, locks, tree packs) is priced at
the provider's default class, data packs at their own class."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cairn.model.snapshot import Summary
from cairn.ops.cost import bill
from cairn.ops.cost.bill import Charges
from cairn.ops.cost.prices import REQUESTS, ClassPrices, Provider
from cairn.repo import layout
from cairn.repo.index import INDEX_OBJECT_BLOBS
from cairn.repo.locks import REFRESH_EVERY
from cairn.repo.writer import INDEX_CHECKPOINT_PACKS
from cairn.storage.archive import ARCHIVE_CLASSES, ObjectInfo

if TYPE_CHECKING:  # the prune itself is not needed to price one (nor by the run records)
    from cairn.ops.prune import PrunePlan, PruneReport

INDEX_ENTRY_BYTES = 50  # one blob in an index object
SNAPSHOT_BYTES = 1024  # a snapshot object, about


def age_days(info: ObjectInfo | None, now: datetime) -> float | None:
    if info is None or info.modified is None:
        return None
    return max(0.0, (now - info.modified).total_seconds() / 86400)


# ---------------------------------------------------------------------- backup
def backup_requests(summary: Summary, dry_run: bool) -> dict[str, int]:
    """The requests and bytes of a whole backup. A saved snapshot's counts stop before the
    snapshot object is written and the lock deleted; a dry run's have only the reads, so what
    it would write is added from what its packer counted."""
    counts = {k: int(summary.requests.get(k, 0)) for k in (*REQUESTS, "bytes_up", "bytes_down")}
    counts["put"] += 1  # the snapshot
    counts["delete"] += 1  # the lock
    counts["bytes_up"] += SNAPSHOT_BYTES
    if dry_run:
        packs = summary.packs_written
        blobs = summary.data_blobs_added + summary.tree_blobs_added
        refreshes = int(summary.duration // REFRESH_EVERY.total_seconds())
        # an index object every 64 packs or 50,000 blobs, whichever comes first
        indexes = max(
            math.ceil(packs / INDEX_CHECKPOINT_PACKS), math.ceil(blobs / INDEX_OBJECT_BLOBS)
        )
        counts["put"] += packs + indexes + 1 + refreshes  # packs, index objects, the lock
        counts["delete"] += refreshes
        counts["bytes_up"] += summary.bytes_stored + blobs * INDEX_ENTRY_BYTES
    return counts


def data_packs(summary: Summary) -> int:
    """The data packs a backup wrote (the rest are tree packs, in the metadata class)."""
    return max(0, summary.packs_written - summary.tree_packs_written)


def backup_charges(
    counts: Mapping[str, int],
    packs: int,
    provider: Provider,
    data: ClassPrices,
    stored: float = 0.0,
) -> Charges:
    """``packs`` of the PUTs are data packs in class ``data``; the rest is metadata (tree
    packs, index, snapshot, lock). ``stored``: bytes the repository holds, for providers whose
    egress is free up to a multiple of it."""
    data_puts = min(packs, counts.get("put", 0))
    meta = {**counts, "put": counts.get("put", 0) - data_puts}
    requests = bill.request_cost(meta, provider.standard) + bill.request_cost(
        {"put": data_puts}, data
    )
    egress = bill.egress(counts.get("bytes_down", 0), provider, stored)
    return Charges(requests=requests, egress=egress)


# ---------------------------------------------------------------------- prune
@dataclass
class PruneCost:
    charges: Charges = field(default_factory=Charges)  # once, to run the prune
    saves_month: float = 0.0  # storage it frees, net of the repacked packs' new copies
    unused_bytes: int = 0  # in all packs, before the prune
    unused_month: float = 0.0  # what they cost per month
    archived_repacks: int = 0  # packs to repack that are archived: prune cannot read them

    @property
    def break_even_months(self) -> float | None:
        if self.saves_month <= 0:
            return None
        return self.charges.total / self.saves_month

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["charges"] = self.charges.as_dict()
        d["break_even_months"] = self.break_even_months
        return d


def prune_cost(
    plan: PrunePlan,
    report: PruneReport,
    objects: Mapping[str, ObjectInfo],
    provider: Provider,
    data: ClassPrices,
    now: datetime,
) -> PruneCost:
    """A prune's one-off cost (its requests, reading back the packs it repacks, deleting packs
    before their minimum duration) and the storage it saves. ``objects``: the store's objects
    by name, with their classes; ``data``: the class repacked data is written to."""
    cost = PruneCost()
    meta = provider.standard

    def priced(name: str) -> tuple[ObjectInfo | None, ClassPrices]:
        info = objects.get(name)
        return info, provider.cls(info.storage_class if info else None)

    for pack_id, unused in plan.unused.items():
        info, cls = priced(layout.pack_name(pack_id.hex()))
        cost.unused_bytes += unused
        cost.unused_month += unused / bill.GIB * cls.storage_price(age_days(info, now))
    for name, size in plan.orphans.items():
        info, cls = priced(name)
        cost.unused_bytes += size
        cost.unused_month += bill.storage_month(size, cls, age_days(info, now))
    charges = Charges()
    condemned = [layout.pack_name(p.hex()) for p in plan.condemned()]
    # the packs a repack reads from the store (not those read from copies on this host)
    repacked = {
        layout.pack_name(r.info.id.hex()) for r, _ in plan.repack if r.info.id not in plan.local
    }
    for name in condemned:
        info, cls = priced(name)
        size = info.size if info else plan.orphans.get(name, 0)
        age = age_days(info, now)
        cost.saves_month += bill.storage_month(size, cls, age)
        charges.early_deletion += bill.early_deletion(size, cls, age)
        charges.requests += cls.request_price("delete")
        if name in repacked:
            charges.requests += cls.request_price("get")
            charges.retrieval += bill.retrieval(size, cls)
            if info is not None and info.storage_class in ARCHIVE_CLASSES:
                cost.archived_repacks += 1
    q = report.requests
    new_packs = min(report.packs_written, q.get("put", 0))  # the rest: locks, index, record
    # repacked data goes to the data class, repacked trees to the metadata class, as a
    # backup writes them
    new_trees = min(report.tree_packs_written, new_packs)
    charges.requests += (new_packs - new_trees) * data.request_price("put")
    charges.requests += new_trees * meta.request_price("put")
    trees = report.tree_bytes_repack_written
    cost.saves_month -= (report.bytes_repack_written - trees) / bill.GIB * data.storage_price(None)
    cost.saves_month -= trees / bill.GIB * meta.storage_price(None)
    other = {
        "put": q.get("put", 0) - new_packs,
        "get": q.get("get", 0) - len(repacked),  # planning (index, snapshots, tree packs), locks
        "list": q.get("list", 0),
        "delete": max(0, q.get("delete", 0) - len(condemned)),
    }
    charges.requests += bill.request_cost(other, meta)
    stored = sum(i.size for i in objects.values())
    charges.egress += bill.egress(q.get("bytes_down", 0), provider, stored)
    cost.charges = charges
    return cost
