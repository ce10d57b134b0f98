"""What a repository cost in one calendar month, from what it recorded: its backups' requests
(snapshot summaries), the requests of the commands that maintain it (operation records,
docs/format.md §8.1), and its storage from the listing; and a forecast for the next month.
docs/cost.md §2.1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cairn.core.errors import UsageError
from cairn.model.oprecord import OpRecord
from cairn.model.snapshot import Snapshot
from cairn.ops.cost import bill, model
from cairn.ops.cost.bill import Charges
from cairn.ops.cost.estimate import age_days, backup_charges, backup_requests, data_packs
from cairn.ops.cost.prices import REQUESTS, ClassPrices, Provider
from cairn.ops.oprecords import RECORD_BYTES
from cairn.storage.archive import ObjectInfo

COUNTED = (*REQUESTS, "bytes_up", "bytes_down")


@dataclass(frozen=True)
class Month:
    """A calendar month, UTC: [start, end)."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str | None, now: datetime) -> Month:
        """``YYYY-MM``, or the current month for None or ''."""
        if not text:
            year, month = now.year, now.month
        else:
            try:
                year, month = (int(p) for p in text.split("-"))
                datetime(year, month, 1)
            except ValueError:
                raise UsageError(f"--month {text}: use YYYY-MM, e.g. 2026-11") from None
            if len(text.split("-")[0]) != 4:
                raise UsageError(f"--month {text}: use YYYY-MM, e.g. 2026-11")
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        return cls(start, end)

    @property
    def name(self) -> str:
        return f"{self.start.year:04d}-{self.start.month:02d}"

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


def _sum(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        for k in COUNTED:
            total[k] += int(c.get(k, 0))
    return {k: total[k] for k in COUNTED}


def record_requests(record: OpRecord) -> dict[str, int]:
    """A run's requests: what its record counted, and the record's own PUT."""
    counts = dict(record.requests)
    counts["put"] = counts.get("put", 0) + 1
    counts["bytes_up"] = counts.get("bytes_up", 0) + RECORD_BYTES
    return counts


def run_charges(record: OpRecord, provider: Provider) -> Charges:
    """A maintenance run's requests, each at the class of the object it touched (the record's
    ``classes``; the rest at the default class), the retrieval of what it read back from an
    infrequent-access class, and the fee for the objects it deleted before their class's
    minimum duration. Egress is the month's (``month_report``)."""
    rest = record_requests(record)
    charges = Charges()
    for name, counts in record.classes.items():
        cls = provider.cls(name)
        charges.requests += bill.request_cost(counts, cls)
        charges.retrieval += bill.retrieval(counts.get("bytes_down", 0), cls)
        for kind in REQUESTS:
            rest[kind] = rest.get(kind, 0) - counts.get(kind, 0)
    charges.requests += bill.request_cost(rest, provider.standard)
    for o in record.deleted:
        age = max(0.0, (record.time - o.modified).total_seconds() / 86400)
        charges.early_deletion += bill.early_deletion(o.size, provider.cls(o.storage_class), age)
    return charges


def month_report(
    month: Month,
    snaps: list[Snapshot],
    records: list[OpRecord],
    objects: Mapping[str, ObjectInfo],
    shape: Mapping[str, int],
    provider: Provider,
    data: ClassPrices,
    now: datetime,
) -> dict[str, Any]:
    """The month's bill (docs/cost.md §2.1): storage, backups, maintenance, and a forecast.
    ``shape``: what the repository holds now (snapshots, index_objects, tree_packs, packs),
    for the model's maintenance when the month recorded none."""
    until = min(month.end, now)
    elapsed = max(0.0, (until - month.start).total_seconds() / 86400)
    # the objects of the listing, and those the records say were deleted since the month began
    held = [(info, until) for info in objects.values()]
    held += [
        (ObjectInfo("", o.size, o.storage_class, o.modified), min(until, r.time))
        for r in records
        for o in r.deleted
    ]
    storage = _storage(month, held, provider)
    backups = [s for s in snaps if month.contains(s.time)]
    # the backups of the month whose snapshots forget removed since: their records kept them
    removed = [b for r in records for b in r.removed if month.contains(b.time)]
    runs = [r for r in records if month.contains(r.time)]
    present = [backup_requests(s.summary, dry_run=False) for s in backups]
    b_counts = _sum([*present, *(b.requests for b in removed)])
    b_packs = sum(data_packs(s.summary) for s in backups) + sum(b.data_packs for b in removed)
    m_counts = _sum(record_requests(r) for r in runs)
    stored = storage["average_bytes"]
    b_charges = backup_charges(b_counts, b_packs, provider, data, stored)
    # maintenance after the backups in the month's free egress allowance
    m_charges = Charges()
    for r in runs:
        m_charges += run_charges(r, provider)
    both = bill.egress(b_counts["bytes_down"] + m_counts["bytes_down"], provider, stored)
    m_charges.egress = max(0.0, both - b_charges.egress)
    total = storage["cost"] + b_charges.total + m_charges.total
    doc: dict[str, Any] = {
        "month": month.name,
        "from": month.start.isoformat(),
        "until": until.isoformat(),
        "complete": now >= month.end,
        "storage": storage,
        "backups": {
            "count": len(backups) + len(removed),
            "removed": len(removed),  # of them, snapshots forget removed since
            "unmeasured": sum(1 for s in backups if not s.summary.requests),
            "requests": b_counts,
            "charges": b_charges.as_dict(),
        },
        "maintenance": {
            "count": len(runs),
            "commands": dict(sorted(Counter(r.command for r in runs).items())),
            "requests": m_counts,
            "charges": m_charges.as_dict(),
        },
        "total": total,
    }
    doc["forecast"] = forecast(doc, elapsed, shape, objects, provider, now)
    return doc


def _storage(
    month: Month, held: list[tuple[ObjectInfo, datetime]], provider: Provider
) -> dict[str, Any]:
    """Every object for the part of the month it was there (from its date in the listing,
    until it was deleted or the month's end; an object without a date, from the month's
    start), at its class's price for its age then. Objects deleted by commands that record
    what they delete (prune) are counted from their records; others (locks, replaced index
    objects: small) are not."""
    by_class: dict[str, dict[str, Any]] = {}
    avg_bytes = 0.0
    cost = 0.0
    for info, until in held:
        begin = max(month.start, info.modified) if info.modified else month.start
        share = max(0.0, (until - begin).total_seconds() / 86400) / month.days
        if share <= 0:
            continue
        cls = provider.cls(info.storage_class)
        c = bill.storage_month(info.size, cls, age_days(info, until)) * share
        line = by_class.setdefault(cls.name, {"class": cls.name, "average_bytes": 0.0, "cost": 0.0})
        line["average_bytes"] += info.size * share
        line["cost"] += c
        avg_bytes += info.size * share
        cost += c
    return {
        "classes": sorted(by_class.values(), key=lambda x: -x["average_bytes"]),
        "average_bytes": avg_bytes,
        "cost": cost,
    }


def forecast(
    doc: dict[str, Any],
    elapsed: float,
    shape: Mapping[str, int],
    objects: Mapping[str, ObjectInfo],
    provider: Provider,
    now: datetime,
) -> dict[str, Any]:
    """The next 30 days: the storage of the listing as it stands (each object a month older),
    the month's backups and maintenance at the rate they ran (per day); for maintenance, when
    the month recorded none, the requests of a daily forget and prune by the model
    (``model.maintenance_requests``, for ``shape``: the snapshots, index objects, tree packs
    and packs the repository holds now)."""
    later = now + timedelta(days=bill.MONTH_DAYS)
    storage = sum(
        bill.storage_month(i.size, provider.cls(i.storage_class), age_days(i, later))
        for i in objects.values()
    )
    storage = max(storage, provider.min_monthly)
    scale = bill.MONTH_DAYS / elapsed if elapsed >= 1 else 0.0
    backups = doc["backups"]["charges"]["total"] * scale
    if doc["maintenance"]["count"] and scale:
        maintenance = doc["maintenance"]["charges"]["total"] * scale
        source = "recorded"
    else:
        daily = model.maintenance_requests(
            shape.get("snapshots", 0),
            shape.get("index_objects", 0),
            shape.get("tree_packs", 0),
            shape.get("packs", 0),
        )
        maintenance = bill.MONTH_DAYS * bill.request_cost(daily, provider.standard)
        source = "model"
    return {
        "days": bill.MONTH_DAYS,
        "storage": storage,
        "backups": backups,
        "maintenance": maintenance,
        "maintenance_from": source,
        "total": storage + backups + maintenance,
    }


def storage_by_month(
    snaps: Iterable[Snapshot], records: Iterable[OpRecord], now: datetime, months: int = 12
) -> list[tuple[Month, int]]:
    """What the repository stored at the end of each month (the current one: now), from what
    it recorded: every backup's stored bytes (its snapshot's summary, or for a backup whose
    snapshot forget removed, what its record kept of its uploads), each command's uploads (a
    prune's repacked packs, a copy's data) less the objects it recorded deleting (a prune's
    packs). The last ``months`` months, from the first one that recorded anything; none for
    a repository that recorded nothing. Objects deleted without a record (locks, replaced
    index objects: small) are not subtracted."""
    changes: list[tuple[datetime, int]] = [(s.time, s.summary.bytes_stored) for s in snaps]
    for r in records:
        changes.append((r.time, int(r.requests.get("bytes_up", 0)) + RECORD_BYTES))
        changes.append((r.time, -sum(o.size for o in r.deleted)))
        changes += [(b.time, int(b.requests.get("bytes_up", 0))) for b in r.removed]
    if not changes:
        return []
    changes.sort(key=lambda c: c[0])
    month = Month.parse(None, changes[0][0].astimezone(UTC))
    last = Month.parse(None, now.astimezone(UTC))
    out: list[tuple[Month, int]] = []
    total, i = 0, 0
    while month.start <= last.start:
        while i < len(changes) and changes[i][0] < month.end:
            total += changes[i][1]
            i += 1
        out.append((month, max(0, total)))
        month = Month.parse(None, month.end)
    return out[-months:]
