"""What things cost: the estimate of a backup (rehearsed by a dry run) and of a prune (planned),
at the price table that applies to the repository (app.pricing), and the whole cost report
(docs/cost.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.app.context import Session
from cairn.app.pricing import priced, pricing, restore_reading
from cairn.core import clock
from cairn.model.snapshot import Summary
from cairn.ops.cost.bill import GIB, egress, request_cost
from cairn.ops.cost.estimate import backup_charges, backup_requests, data_packs, prune_cost
from cairn.ops.cost.month import Month, month_report, storage_by_month
from cairn.ops.cost.prices import Provider
from cairn.ops.cost.report import CostOptions, cost_report, data_class, inventory, storage_section
from cairn.ops.oprecords import load_records
from cairn.ops.prune import PrunePlan, PruneReport
from cairn.ops.snapshots import load_snapshots
from cairn.repo import layout
from cairn.storage.archive import RESTORE_TIERS

__all__ = [
    "RESTORE_TIERS",
    "CostRequest",
    "Month",
    "Provider",
    "month",
    "parse_month",
    "pricing",
    "report",
    "storage_months",
]


LOCAL_NOTE = (
    "a local directory: no provider bills its requests or its storage (cost --provider, or "
    "$CAIRN_PROVIDER, prices it as if it were at that provider)"
)


def _prices_line(provider: Provider, why: str) -> str:
    return f"prices: {provider.name}, list prices of {provider.taken} ({why})"


def backup_estimate(session: Session, summary: Summary, lock_extensions: int = 0) -> dict[str, Any]:
    """What the backup a dry run rehearsed would cost: its reads, as counted, and the writes
    its packer counted (data packs in the session's storage class), with the object locks it
    would extend (a PUT-class PutObjectRetention each). A local directory: what it would
    store, nothing priced."""
    if not priced(session.url):
        return {"local": True, "stored": summary.bytes_stored, "prices": LOCAL_NOTE}
    provider, why = pricing(session.url)
    data = provider.cls(session.spec.store.s3.storage_class)
    counts = backup_requests(summary, dry_run=True)
    counts["put"] += lock_extensions
    counts["list"] += session.keys_listings_ahead()  # as the backup's opening will list
    stored = sum(stored for _, stored, _ in session.repo.index.total_blobs_by_type().values())
    charges = backup_charges(counts, data_packs(summary), provider, data, stored)
    return {
        "requests": counts,
        "cost": charges.total,
        "stored": summary.bytes_stored,
        "adds_month": summary.bytes_stored / GIB * data.storage_gb_month,
        "provider": provider.key,
        "data_class": data.name,
        "prices": _prices_line(provider, why),
        **({"lock_extensions": lock_extensions} if lock_extensions else {}),
    }


def prune_estimate(session: Session, plan: PrunePlan, report: PruneReport) -> dict[str, Any] | None:
    """What the prune a dry run planned would cost and save (repacked data in the session's
    storage class, or the class most data packs are in); None for a local directory with no
    provider named (nothing to price)."""
    if not priced(session.url):
        return None
    provider, why = pricing(session.url)
    repo = session.repo
    objects = inventory(repo, provider)
    data = provider.cls(session.spec.store.s3.storage_class or data_class(repo, objects, provider))
    cost = prune_cost(plan, report, objects, provider, data, clock.now())
    return {**cost.as_dict(), "provider": provider.key, "prices": _prices_line(provider, why)}


def copy_estimate(
    source: Session,
    dest: Session,
    source_requests: dict[str, int],
    dest_requests: dict[str, int],
    stored: int,
) -> dict[str, Any] | None:
    """What a copy cost: the source's requests and downloads at its provider, the
    destination's requests at its own, and what the data it added costs there a month
    (``stored`` bytes, in the destination's storage class). None when neither store is priced
    (two local directories)."""
    sides: dict[str, Any] = {}
    total = 0.0
    if priced(source.url):
        provider, why = pricing(source.url)
        cls = provider.standard
        cost = request_cost(source_requests, cls) + egress(
            source_requests.get("bytes_down", 0), provider
        )
        sides["source"] = {
            "cost": cost,
            "provider": provider.key,
            "prices": _prices_line(provider, why),
        }
        total += cost
    if priced(dest.url):
        provider, why = pricing(dest.url)
        data = provider.cls(dest.spec.store.s3.storage_class)
        cost = request_cost(dest_requests, data)
        sides["destination"] = {
            "cost": cost,
            "adds_month": stored / GIB * data.storage_gb_month,
            "provider": provider.key,
            "data_class": data.name,
            "prices": _prices_line(provider, why),
        }
        total += cost
    if not sides:
        return None
    return {**sides, "cost": total}


@dataclass(frozen=True)
class CostRequest:
    provider: str | None = None  # a price table's key; None: $CAIRN_PROVIDER or by the URL
    prices_file: str | None = None  # a TOML file overriding the tables
    last: int = 7  # backups to average
    max_unused: float = 0.65  # the prune to estimate
    bandwidth_mbit: float = 100.0  # download speed for the restore time
    restore_tier: str = "Standard"  # how archived packs would be restored


def report(session: Session, request: CostRequest) -> tuple[dict[str, Any], Provider | None, str]:
    """The cost report (a JSON-ready document), the provider it priced with, and why. A local
    directory with no provider named: its size, nothing priced (no provider, None)."""
    if not priced(session.url, request.provider):
        objects = list(session.repo.storage.list(""))
        doc = {
            "repository": session.url,
            "local": True,
            "storage": {"objects": len(objects), "bytes": sum(size for _, size in objects)},
        }
        return doc, None, LOCAL_NOTE
    chosen, why = pricing(session.url, request.provider, request.prices_file)
    pack_order, gap = restore_reading(session.url, request.provider, request.prices_file)
    options = CostOptions(
        last=max(1, request.last),
        max_unused=request.max_unused,
        bandwidth_mbit=max(0.001, request.bandwidth_mbit),
        restore_tier=request.restore_tier,
        data_class=session.spec.store.s3.storage_class,
        restore_gap=gap if pack_order else None,
        key_known=not session.opening_lists_keys(),
    )
    doc = cost_report(session.repo, chosen, options, clock.now())
    doc["repository"] = session.url
    doc["provider"]["chosen_by"] = why
    return doc, chosen, why


def parse_month(text: str | None) -> Month:
    """``YYYY-MM``, or this month for None or ''; a usage error otherwise."""
    return Month.parse(text, clock.now())


def month(
    session: Session, request: CostRequest, period: Month
) -> tuple[dict[str, Any], Provider, str]:
    """What the repository cost in the month ``period`` (``parse_month``) from what it
    recorded, and the next month's forecast (docs/cost.md §2.1)."""
    now = clock.now()
    chosen, why = pricing(session.url, request.provider, request.prices_file)
    repo = session.repo
    objects = inventory(repo, chosen)
    repo.load_index()
    data = chosen.cls(session.spec.store.s3.storage_class or data_class(repo, objects, chosen))
    snaps = load_snapshots(repo)
    dated = {name: info.modified for name, info in objects.items()}
    listing = load_records(repo, dated, period.start)
    packs = repo.index.packs
    shape = {
        "snapshots": len(snaps),
        "index_objects": sum(1 for n in objects if n.startswith(layout.INDEX)),
        "tree_packs": sum(1 for p in packs if p.blob_type == layout.TREE_BLOB),
        "packs": len(packs),
    }
    doc = month_report(period, snaps, listing.records, objects, shape, chosen, data, now)
    doc["damaged_records"] = listing.damaged
    doc["repository"] = session.url
    doc["provider"] = {k: getattr(chosen, k) for k in ("key", "name", "taken", "source")}
    doc["provider"]["chosen_by"] = why
    doc["data_class"] = data.name
    return doc, chosen, why


@dataclass(frozen=True)
class Storage:
    objects: int
    bytes: int
    month: float | None  # what storing them costs a month; None: not priced (a local directory)


def storage(session: Session, provider: str | None = None) -> Storage:
    """The repository's objects and, where it is priced, what storing them costs a month: one
    listing of the store (with the storage classes where it has them), nothing read."""
    if not priced(session.url, provider):
        objects = list(session.repo.storage.list(""))
        return Storage(len(objects), sum(size for _, size in objects), None)
    chosen, _ = pricing(session.url, provider)
    section = storage_section(inventory(session.repo, chosen), chosen, clock.now())
    return Storage(section["objects"], section["bytes"], section["month"])


def storage_months(session: Session, months: int = 12) -> list[tuple[str, int]]:
    """What the repository stored at the end of each of its last ``months`` months (YYYY-MM,
    bytes), from its snapshots and operation records (``storage_by_month``)."""
    repo = session.repo
    snaps = load_snapshots(repo)
    records = load_records(repo).records
    return [(m.name, n) for m, n in storage_by_month(snaps, records, clock.now(), months)]
