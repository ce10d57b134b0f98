"""The steady state of a repository backed up and pruned every day: what it costs per month
for a pack size and a repack threshold. docs/cost.md derives it and works an example.

Data in use S (GiB) gains c GiB of new data a day and loses as much. Changes scatter over the
packs at random, the worst case for fragmentation: every used blob stops being used with the
same chance each day, lam = c / S. A pack's used share after a days is then exp(-lam * a); with
a per-pack threshold t (prune's --max-unused) it is repacked at age T = -ln(1 - t) / lam, when
a share 1 - t is still used and is written again. So every day W = c / t GiB of packs are
written (new data and repacked blobs) and as much is read back and deleted, and the store
holds W * T = S * f(t) GiB, f(t) = -ln(1 - t) / t.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from cairn.ops.cost import bill
from cairn.ops.cost.prices import ClassPrices, Provider

INDEX_ENTRY_BYTES = 50  # one blob in an index object (msgpack: id, offset, lengths)
INDEX_OBJECT_BLOBS = 50_000  # blobs per index object (cairn.repo.index)
LIST_PAGE = 1000  # names per LIST request


def maintenance_requests(
    snapshots: int,
    index_objects: int,
    tree_packs: int = 0,
    packs: int = 0,
    copies: bool = True,
) -> dict[str, int]:
    """The requests of one day's `forget` (one snapshot removed) and `prune` (that deletes
    or repacks), but for the packs the prune reads, writes and deletes (``steady_state``
    counts those): opening the repository twice (a key file and the config: the host knows
    which key file opens it, docs/format.md §11.7, and lists no keys), the
    snapshots read twice (``snapshots`` kept, one more before the forget), the index
    (``index_objects`` written anew, one more read and deleted: the day's backup added it),
    the repacking writer's index object, the tree packs read, the prune's one listing of the
    whole repository (``packs`` packs, the snapshots and index objects, the config, a key and
    a lock; operation records, two a day, add a page every 500 days and are left out), the
    prune's lock (written, updated, read back, deleted), the listings of its second look,
    and an operation record each (docs/cost.md §4). With ``copies`` (the host that backs up
    also prunes, and keeps copies of the index objects, snapshots and tree packs, as cairn
    does on an object store: docs/format.md §11.6) none of those is read from the store."""
    listed = packs + snapshots + index_objects + 3
    pages = 1 + max(0, listed - 1) // LIST_PAGE
    read = 0 if copies else 1
    forget = {"list": 1, "get": 2 + read * (snapshots + 1), "put": 1, "delete": 1}
    prune = {
        "list": 3 + pages,
        "get": 3 + read * (snapshots + index_objects + tree_packs + 1),
        "put": 4 + index_objects,
        "delete": 4 + index_objects,
    }
    return {k: forget.get(k, 0) + prune[k] for k in prune}


@dataclass(frozen=True)
class Workload:
    live_gib: float = 1024.0  # one snapshot's data, as stored (deduplicated, compressed)
    daily_change: float = 0.05  # the share of it replaced by new data every day
    keep_daily: int = 7  # daily snapshots kept (forget --keep-daily), pruned every day
    chunk_mib: float = 1.0  # the average blob

    @property
    def change_gib(self) -> float:
        return self.live_gib * self.daily_change

    @property
    def used_gib(self) -> float:
        """What the kept snapshots use: the newest, plus what each older one holds alone."""
        return self.live_gib + (self.keep_daily - 1) * self.change_gib


@dataclass(frozen=True)
class Policy:
    pack_mib: float = 40.0
    max_unused: float = 0.5  # per pack: repack when more than this share is unused
    # True: the index is kept on the host (cairn on an object store, docs/format.md §11.6;
    # restic too); False: every run downloads the whole index
    index_cached: bool = True
    runs_per_day: int = 2  # runs that read the index: a backup and a prune
    maintenance: bool = True  # count the daily forget's and prune's other requests
    snapshots: int = 7  # kept (as Workload.keep_daily): what forget and prune read every day


@dataclass
class Month:
    """One month (30 days) in the steady state."""

    stored_gib: float  # held by the store on average
    billed_gib: float  # billed: packs deleted before the minimum duration count to it
    pack_days: float  # how long a pack lives
    written_gib_day: float  # new data and repacked blobs
    read_gib_day: float  # packs read back by prune to repack them
    puts: float
    gets: float
    maintenance: float  # requests of the daily forget and prune but for the packs
    storage: float
    requests: float
    egress: float
    retrieval: float

    @property
    def total(self) -> float:
        return self.storage + self.requests + self.maintenance + self.egress + self.retrieval

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


def overhead(t: float) -> float:
    """f(t): stored bytes per used byte with a per-pack repack threshold t."""
    return -math.log1p(-t) / t


def steady_state(
    used_gib: float,
    change_gib: float,
    policy: Policy,
    provider: Provider,
    cls: ClassPrices,
    chunk_mib: float = 1.0,
) -> Month:
    t = policy.max_unused
    if not 0 < t < 1 or used_gib <= 0 or change_gib <= 0:
        raise ValueError("the model needs 0 < max_unused < 1 and positive data and change")
    lam = change_gib / used_gib
    life = -math.log1p(-t) / lam
    written = change_gib / t
    stored = written * life
    billed = written * max(life, cls.min_days)
    days = bill.MONTH_DAYS
    packs = days * written * 1024 / policy.pack_mib
    read = days * written
    blobs = stored * 1024 / chunk_mib
    maintenance = 0.0
    if policy.maintenance:
        daily = maintenance_requests(
            snapshots=policy.snapshots,
            index_objects=math.ceil(blobs / INDEX_OBJECT_BLOBS),
            packs=math.ceil(stored * 1024 / policy.pack_mib),
        )
        maintenance = days * bill.request_cost(daily, provider.standard)
    if not policy.index_cached:
        read_index = days * policy.runs_per_day * blobs * INDEX_ENTRY_BYTES / bill.GIB
    else:
        read_index = 0.0
    return Month(
        stored_gib=stored,
        billed_gib=billed,
        pack_days=life,
        written_gib_day=written,
        read_gib_day=written,
        puts=packs,
        gets=packs,
        maintenance=maintenance,
        storage=billed * cls.storage_gb_month,
        requests=packs * (cls.request_price("put") + cls.request_price("get")),
        egress=bill.egress((read + read_index) * bill.GIB, provider, stored * bill.GIB),
        retrieval=read * cls.retrieval_per_gb,
    )


def restic_threshold(max_unused_total: float) -> float:
    """The per-pack threshold that keeps a share ``max_unused_total`` of the whole repository
    unused in the steady state (restic's --max-unused counts over the repository):
    1 - 1 / f(t) = u, solved by bisection."""
    lo, hi = 1e-9, 1 - 1e-9
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1 - 1 / overhead(mid) < max_unused_total:
            lo = mid
        else:
            hi = mid
    return lo


def best_threshold(
    used_gib: float, change_gib: float, policy: Policy, provider: Provider, cls: ClassPrices
) -> float:
    """The --max-unused (to 1%) with the lowest monthly total for this workload and store."""
    grid = [i / 100 for i in range(2, 99)]
    return min(
        grid,
        key=lambda t: (
            steady_state(used_gib, change_gib, replace(policy, max_unused=t), provider, cls).total
        ),
    )
