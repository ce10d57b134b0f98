"""`cairn cost`: the bill of a repository as it stands.

- storage: every object with its storage class (one listing; a local directory is priced as
  the provider's default class), per month;
- backups: the last one and the average of the last N, from the requests and bytes each
  snapshot recorded;
- restore: a full restore of the latest snapshot, counted from the restore's own schedule (one
  GET per read it makes: cairn.ops.restore.schedule), with retrieval fees, restores of archived
  packs, egress and the time it takes;
- prune: the unused parts of packs, and what a prune would save net of its own cost;
- the model's best --max-unused for this repository's change rate (cairn.ops.cost.model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cairn.core.errors import CairnError
from cairn.model.node import DIR, FILE
from cairn.model.snapshot import Snapshot
from cairn.ops.cost import bill, model
from cairn.ops.cost.estimate import (
    age_days,
    backup_charges,
    backup_requests,
    data_packs,
    prune_cost,
)
from cairn.ops.cost.prices import ClassPrices, Provider
from cairn.ops.prune import PruneOptions, PrunePlan, PruneReport, plan_prune
from cairn.ops.restore import Planner, reads, zero_blob
from cairn.ops.snapshots import load_snapshots
from cairn.ops.treewalk import TreeProblem
from cairn.repo import layout
from cairn.repo.repository import Repository
from cairn.storage.archive import ARCHIVE_CLASSES, ObjectInfo
from cairn.storage.metered import LIST_PAGE


@dataclass(frozen=True)
class CostOptions:
    last: int = 7  # backups averaged
    max_unused: float = PruneOptions().max_unused  # the prune estimated
    bandwidth_mbit: float = 100.0  # download speed for the restore time
    restore_tier: str = "Standard"  # how archived packs would be restored
    restore_days: int = 7  # and kept
    data_class: str | None = None  # where new data packs go (--storage-class)
    # how a restore reads: in pack order, reading through gaps this small (None: file by file)
    restore_gap: int | None = None
    # this host opens the repository with the key file it knows, listing no keys
    # (docs/format.md §11.7); else a restore lists them first
    key_known: bool = False


def inventory(repo: Repository, provider: Provider) -> dict[str, ObjectInfo]:
    """Every object of the repository with its storage class."""
    archive = repo.storage.archive
    if archive is not None:
        return {i.name: i for i in archive.list_with_class("")}
    cls = provider.default_class
    return {n: ObjectInfo(n, size, cls, None) for n, size in repo.storage.list("")}


def cost_report(
    repo: Repository, provider: Provider, options: CostOptions, now: datetime
) -> dict[str, Any]:
    planned: tuple[PrunePlan, PruneReport] | CairnError
    try:  # planning loads the index, which everything else needs too
        planned = plan_prune(repo, PruneOptions(max_unused=options.max_unused))
    except CairnError as e:
        planned = e
        repo.load_index()
    objects = inventory(repo, provider)
    data = provider.cls(options.data_class or data_class(repo, objects, provider))
    snaps = load_snapshots(repo)
    doc: dict[str, Any] = {
        "provider": {k: getattr(provider, k) for k in ("key", "name", "taken", "source")},
        "data_class": data.name,
        "storage": storage_section(objects, provider, now),
        "backups": backups_section(
            snaps, options.last, provider, data, sum(i.size for i in objects.values())
        ),
        "restore": restore_section(repo, snaps, objects, provider, options),
    }
    doc["prune"] = prune_section(planned, objects, provider, data, options, now)
    doc["advice"] = advice_section(repo, snaps, doc, provider, data, now)
    return doc


def data_class(repo: Repository, objects: dict[str, ObjectInfo], provider: Provider) -> str:
    """The class holding the most bytes of data packs."""
    by_class: dict[str, int] = {}
    for pack in repo.index.packs:
        info = objects.get(layout.pack_name(pack.id.hex()))
        if info is not None and pack.blob_type == layout.DATA_BLOB:
            by_class[info.storage_class] = by_class.get(info.storage_class, 0) + info.size
    return max(by_class, key=lambda c: by_class[c]) if by_class else provider.default_class


# ---------------------------------------------------------------------- storage
def storage_section(
    objects: dict[str, ObjectInfo], provider: Provider, now: datetime
) -> dict[str, Any]:
    lines: dict[str, dict[str, Any]] = {}
    unpriced = set()
    for info in objects.values():
        cls = provider.cls(info.storage_class)
        if cls.name != info.storage_class:
            unpriced.add(info.storage_class)
        line = lines.setdefault(
            cls.name, {"class": cls.name, "objects": 0, "bytes": 0, "month": 0.0}
        )
        line["objects"] += 1
        line["bytes"] += info.size
        line["month"] += bill.storage_month(info.size, cls, age_days(info, now))
    total = sum(line["month"] for line in lines.values())
    return {
        "classes": sorted(lines.values(), key=lambda line: -line["bytes"]),
        "objects": len(objects),
        "bytes": sum(i.size for i in objects.values()),
        "month": max(total, provider.min_monthly),
        "minimum_applies": total < provider.min_monthly,
        "unpriced_classes": sorted(unpriced),
    }


# ---------------------------------------------------------------------- backups
def backup_line(
    snap: Snapshot, provider: Provider, data: ClassPrices, stored: float
) -> dict[str, Any]:
    counts = backup_requests(snap.summary, dry_run=False)
    charges = backup_charges(counts, data_packs(snap.summary), provider, data, stored)
    return {
        "snapshot": snap.id,
        "time": snap.time.isoformat(),
        "requests": counts,
        "cost": charges.total,
        "stored": snap.summary.bytes_stored,
        "adds_month": snap.summary.bytes_stored / bill.GIB * data.storage_gb_month,
    }


def backups_section(
    snaps: list[Snapshot], last: int, provider: Provider, data: ClassPrices, stored: float
) -> dict[str, Any]:
    recorded = [s for s in snaps if s.summary.requests]
    lines = [backup_line(s, provider, data, stored) for s in recorded[-max(1, last) :]]
    if not lines:
        return {"last": None, "average": None, "count": 0}
    keys = lines[0]["requests"].keys()
    n = len(lines)
    average = {
        "requests": {k: sum(line["requests"][k] for line in lines) / n for k in keys},
        "cost": sum(line["cost"] for line in lines) / n,
        "stored": sum(line["stored"] for line in lines) / n,
        "adds_month": sum(line["adds_month"] for line in lines) / n,
    }
    return {"last": lines[-1], "average": average, "count": n}


# ---------------------------------------------------------------------- restore
def restore_section(
    repo: Repository,
    snaps: list[Snapshot],
    objects: dict[str, ObjectInfo],
    provider: Provider,
    options: CostOptions,
) -> dict[str, Any] | None:
    """A full restore of the latest snapshot, counted from what the restore code reads."""
    if not snaps:
        return None
    snap = snaps[-1]
    plan = list(Planner(repo, on_problem=_ignore).plan(snap, "/"))
    meta = provider.standard
    # opening: the keys listing (unless this host knows its key file), a key, the config;
    # every index object; every snapshot (to find the latest); then one tree per directory;
    # then the data blobs. What this host keeps copies of (cairn.repo.objectcache) is read
    # from them, not from the store.
    cache = repo.object_cache

    def remote(name: str) -> bool:
        return cache is None or not cache.holds(name)

    indexes = [n for n in objects if n.startswith(layout.INDEX)]
    snapshots = [n for n in objects if n.startswith(layout.SNAPSHOTS)]
    keys = sorted(n for n in objects if n.startswith(layout.KEYS))
    names = [n for n in indexes + snapshots if remote(n)]
    gets = 2 + len(names)
    lists = (0 if options.key_known else 1) + _pages(len(indexes)) + _pages(len(snapshots))
    down = sum(objects[n].size for n in names) + (objects[keys[0]].size if keys else 0)
    down += objects[layout.CONFIG].size if layout.CONFIG in objects else 0
    trees = [snap.tree] + [e.node.subtree for e in plan if e.node.type == DIR and e.node.subtree]
    for tree_id in trees:
        entry = repo.index.get(tree_id)
        if entry is not None and not remote(layout.pack_name(entry.pack.id.hex())):
            continue
        down += entry.length if entry is not None else 0
        gets += 1
    charges = bill.Charges(
        requests=gets * meta.request_price("get") + lists * meta.request_price("list")
    )
    by_class: dict[str, dict[str, Any]] = {}
    packs: dict[str, int] = {}
    data_bytes = 0
    gap = options.restore_gap
    heads = 0
    for read in reads(plan, repo.index.get, gap is not None, gap or 0, zero_blob(repo)):
        name = layout.pack_name(read.pack.id.hex())
        info = objects.get(name)
        cls = provider.cls(info.storage_class if info else None)
        if not packs and repo.storage.archive is not None:
            # before the first read, one HEAD asks whether its pack is archived (app/restore)
            heads = 1
            charges.requests += cls.request_price("head")
        line = by_class.setdefault(cls.name, {"class": cls.name, "gets": 0, "bytes": 0})
        line["gets"] += 1
        line["bytes"] += read.length
        data_bytes += read.length
        packs[name] = info.size if info else 0
        charges.requests += cls.request_price("get")
    hours = 0.0
    for line in by_class.values():
        cls = provider.cls(line["class"])
        if line["class"] in ARCHIVE_CLASSES:
            sizes = [s for n, s in packs.items() if _class_of(objects, n) == line["class"]]
            line["packs"] = len(sizes)
            line["pack_bytes"] = sum(sizes)
            if options.restore_tier in cls.restore:
                thaw, wait = bill.thaw(
                    sizes, cls, options.restore_tier, options.restore_days, provider.standard
                )
                charges += thaw
                hours = max(hours, wait)
        else:
            charges.retrieval += bill.retrieval(line["bytes"], cls)
    down += data_bytes
    stored = sum(i.size for i in objects.values())
    charges.egress = bill.egress(down, provider, stored)
    seconds = down * 8 / (options.bandwidth_mbit * 1e6)
    return {
        "snapshot": snap.id,
        "files_bytes": sum(e.node.size for e in plan if e.node.type == FILE),
        "requests": {
            "get": gets + sum(line["gets"] for line in by_class.values()),
            "list": lists,
            "head": heads,
        },
        "bytes_down": down,
        "by_class": sorted(by_class.values(), key=lambda line: -line["bytes"]),
        "charges": charges.as_dict(),
        "thaw_hours": hours,
        "thaw_tier": options.restore_tier,
        "download_seconds": seconds,
        "bandwidth_mbit": options.bandwidth_mbit,
        "hours": hours + seconds / 3600,
    }


def _ignore(problem: TreeProblem) -> None:
    pass  # a tree that cannot be read: the restore would read nothing below it either


def _class_of(objects: dict[str, ObjectInfo], name: str) -> str | None:
    info = objects.get(name)
    return info.storage_class if info else None


def _pages(n: int) -> int:
    return 1 + max(0, n - 1) // LIST_PAGE


# ---------------------------------------------------------------------- prune
def prune_section(
    planned: tuple[PrunePlan, PruneReport] | CairnError,
    objects: dict[str, ObjectInfo],
    provider: Provider,
    data: ClassPrices,
    options: CostOptions,
    now: datetime,
) -> dict[str, Any]:
    if isinstance(planned, CairnError):  # another prune runs, or the repository is damaged
        return {"error": str(planned), "max_unused": options.max_unused}
    plan, report = planned
    cost = prune_cost(plan, report, objects, provider, data, now)
    return {
        "max_unused": options.max_unused,
        "packs_deleted": report.packs_deleted + report.orphan_packs,
        "packs_repacked": report.packs_repacked,
        "bytes_freed": report.bytes_freed,
        "requests": report.requests,
        **cost.as_dict(),
    }


# ---------------------------------------------------------------------- advice
def advice_section(
    repo: Repository,
    snaps: list[Snapshot],
    doc: dict[str, Any],
    provider: Provider,
    data: ClassPrices,
    now: datetime,
) -> dict[str, Any] | None:
    """The model's best --max-unused, for the change rate of the last 30 days' backups."""
    recent = [s for s in snaps if s.time >= now - timedelta(days=30)]
    prune = doc["prune"]
    if len(recent) < 2 or "error" in prune:
        return None
    days = max(1.0, (recent[-1].time - recent[0].time).total_seconds() / 86400)
    change = sum(s.summary.bytes_stored for s in recent[1:]) / days / bill.GIB
    used = (doc["storage"]["bytes"] - prune["unused_bytes"]) / bill.GIB
    if change <= 0 or used <= 0:
        return None
    policy = model.Policy(pack_mib=repo.config.pack_size / (1 << 20))
    best = model.best_threshold(used, change, policy, provider, data)
    return {
        "daily_change": change / used,
        "used_bytes": used * bill.GIB,
        "best_max_unused": best,
        "month_at_best": _month(used, change, policy, best, provider, data),
        "month_at_max_unused": _month(used, change, policy, prune["max_unused"], provider, data),
    }


def _month(
    used: float, change: float, policy: model.Policy, t: float, p: Provider, c: ClassPrices
) -> float | None:
    if not 0 < t < 1:
        return None
    m = model.steady_state(used, change, replace(policy, max_unused=t), p, c)
    return m.total if math.isfinite(m.total) else None
