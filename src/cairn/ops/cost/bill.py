"""The arithmetic of a bill: pure functions of byte and request counts and a price table.

A month is 30 days; a GB is 2^30 bytes. One-off operations (a backup, a restore, a prune) are
``Charges``; storage is a price per month.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from cairn.core.errors import UsageError
from cairn.ops.cost.prices import REQUESTS, ClassPrices, Provider

GIB = float(1 << 30)
MONTH_DAYS = 30.0
_MONITORED_FROM = 128 << 10  # Intelligent-Tiering monitors (and bills) objects from 128 KiB


@dataclass
class Charges:
    """What one operation costs, by kind of charge, in dollars."""

    requests: float = 0.0
    egress: float = 0.0
    retrieval: float = 0.0  # reading back from infrequent-access classes, restoring archives
    early_deletion: float = 0.0  # the rest of the minimum storage duration of deleted objects

    @property
    def total(self) -> float:
        return self.requests + self.egress + self.retrieval + self.early_deletion

    def __add__(self, other: Charges) -> Charges:
        a, b = asdict(self), asdict(other)
        return Charges(**{k: a[k] + b[k] for k in a})

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


def request_cost(counts: Mapping[str, int], cls: ClassPrices) -> float:
    """Requests (put, get, head, list, delete; other keys are ignored) at one class's prices."""
    return sum(counts.get(kind, 0) * cls.request_price(kind) for kind in REQUESTS)


def billed_bytes(size: int, cls: ClassPrices) -> float:
    """The size a store bills for an object: its minimum billable size, plus per-object
    overhead (archive classes keep an index of each object)."""
    return max(float(size), cls.min_object_kb * 1024) + cls.overhead_kb * 1024


def storage_month(size: int, cls: ClassPrices, age_days: float | None = None) -> float:
    """What storing one object costs per month at its age."""
    cost = billed_bytes(size, cls) / GIB * cls.storage_price(age_days)
    if size >= _MONITORED_FROM:
        cost += cls.monitoring_per_1000_objects / 1000
    return cost


def early_deletion(size: int, cls: ClassPrices, age_days: float | None) -> float:
    """The fee for deleting an object of this age: the rest of its minimum duration.
    An object of unknown age is taken as new (the worst case)."""
    remaining = max(0.0, cls.min_days - (age_days or 0.0))
    return billed_bytes(size, cls) / GIB * cls.storage_price(age_days) * remaining / MONTH_DAYS


def egress(nbytes: float, provider: Provider, stored_bytes: float = 0.0) -> float:
    """Downloading ``nbytes`` in a month in which ``stored_bytes`` are stored (some providers
    give egress up to a multiple of the data stored)."""
    billable = max(0.0, nbytes - provider.egress_free_ratio * stored_bytes)
    return billable / GIB * provider.egress_per_gb


def bytes_per_get(provider: Provider, cls: ClassPrices | None = None) -> float:
    """How many bytes downloaded from ``cls`` (the default class) cost as much as one GET
    request: reading through a gap between needed bytes up to this size is cheaper than
    another request. Infinite where downloads are free."""
    cls = cls or provider.standard
    per_byte = (provider.egress_per_gb + cls.retrieval_per_gb) / GIB
    get = cls.request_price("get")
    return get / per_byte if per_byte > 0 else math.inf


def retrieval(nbytes: float, cls: ClassPrices) -> float:
    return nbytes / GIB * cls.retrieval_per_gb


def thaw(
    sizes: Iterable[int], cls: ClassPrices, tier: str, days: int, standard: ClassPrices
) -> tuple[Charges, float]:
    """(charges, hours) of restoring archived objects of ``sizes`` for ``days`` days: restore
    requests, the retrieval fee, and the temporary copies billed at ``standard``'s price."""
    if tier not in cls.restore:
        known = ", ".join(cls.restore) or "none"
        raise UsageError(f"{cls.name} has no restore tier {tier!r} (tiers: {known})")
    t = cls.restore[tier]
    sizes = list(sizes)
    total = float(sum(sizes))
    copies = total / GIB * standard.storage_gb_month * days / MONTH_DAYS
    fee = len(sizes) * t.per_1000 / 1000 + total / GIB * t.per_gb + copies
    return Charges(retrieval=fee), (t.hours if sizes else 0.0)
