"""Restoring from archive storage classes (GLACIER, DEEP_ARCHIVE).

Archived packs cannot be read until the store has made a temporary copy of them, which takes
hours. A restore therefore first finds, among exactly the packs it will read, those in an
archive class (one listing with storage classes), asks whether each has a readable copy
(HEAD), and requests a copy of the others (RestoreObject) for ``days`` days at a ``tier``.
Then it either waits, asking again every ``poll`` seconds, or stops so that it can be run
again later: a second run requests nothing twice and proceeds once every copy is readable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from cairn.core.errors import UsageError
from cairn.ops.cost import bill
from cairn.ops.cost.prices import Provider
from cairn.ops.restore.schedule import Read
from cairn.repo import layout
from cairn.storage.archive import (
    ARCHIVE_CLASSES,
    ARCHIVED,
    RESTORE_TIERS,
    RESTORING,
    ArchiveStore,
    ObjectInfo,
)

POLL_SECONDS = {"Expedited": 60.0, "Standard": 600.0, "Bulk": 1800.0}


@dataclass(frozen=True)
class ThawOptions:
    days: int = 7  # how long the restored copies stay readable
    tier: str = "Standard"  # Expedited, Standard or Bulk

    def __post_init__(self) -> None:
        if self.tier not in RESTORE_TIERS:
            raise UsageError(f"unknown restore tier {self.tier!r} ({', '.join(RESTORE_TIERS)})")
        if self.days < 1:
            raise UsageError("restored copies must stay readable for at least 1 day")


@dataclass
class ThawReport:
    packs: int = 0  # packs the restore needs that are in an archive class
    bytes: int = 0
    ready: int = 0  # readable copies exist
    restoring: int = 0  # requested by an earlier run, not readable yet
    requested: int = 0  # requested by this run
    classes: dict[str, int] = field(default_factory=dict)  # archive class -> packs
    tier: str = "Standard"
    days: int = 7
    hours: float = 0.0  # the longest expected wait of the requested tier (0: unknown)
    cost: float = 0.0  # of this run's requests: fees, retrieval, the temporary copies
    waiting: list[str] = field(default_factory=list)  # packs not readable yet

    @property
    def pending(self) -> int:
        return self.restoring + self.requested

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("waiting")
        d["pending"] = self.pending
        return d


def packs_of(reads: Iterable[Read]) -> set[str]:
    """The names of the packs that a restore's reads touch."""
    return {layout.pack_name(r.pack.id.hex()) for r in reads}


def request_thaw(
    archive: ArchiveStore, needed: set[str], options: ThawOptions, provider: Provider
) -> ThawReport:
    """Finds the archived packs among ``needed`` and requests a copy of those that have none."""
    report = ThawReport(tier=options.tier, days=options.days)
    archived: list[ObjectInfo] = [
        info
        for info in archive.list_with_class(layout.DATA)
        if info.name in needed and info.storage_class in ARCHIVE_CLASSES
    ]
    for info in archived:
        cls = provider.classes.get(info.storage_class)
        if cls is not None and cls.restore and options.tier not in cls.restore:
            raise UsageError(
                f"{info.storage_class} cannot be restored with the {options.tier} tier "
                f"(use {' or '.join(cls.restore)})"
            )
    requested: dict[str, list[int]] = {}
    for info in sorted(archived, key=lambda i: i.name):
        report.packs += 1
        report.bytes += info.size
        report.classes[info.storage_class] = report.classes.get(info.storage_class, 0) + 1
        state = archive.restore_status(info.name)
        if state == RESTORING:
            report.restoring += 1
        elif state == ARCHIVED:
            archive.request_restore(info.name, options.days, options.tier)
            report.requested += 1
            requested.setdefault(info.storage_class, []).append(info.size)
        else:
            report.ready += 1
            continue
        report.waiting.append(info.name)
    for name in report.classes:
        cls = provider.classes.get(name)
        if cls is None or options.tier not in cls.restore:
            continue  # a provider without these figures: cost and wait unknown
        charges, _ = bill.thaw(
            requested.get(name, []), cls, options.tier, options.days, provider.standard
        )
        report.cost += charges.total
        report.hours = max(report.hours, cls.restore[options.tier].hours)
    return report


def wait_for_thaw(
    archive: ArchiveStore,
    report: ThawReport,
    options: ThawOptions,
    on_wait: Callable[[int], None] = lambda left: None,
    poll: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Returns once every pack of ``report.waiting`` is readable. Copies of a batch become
    readable at about the same time, so each check stops at the first pack still waiting."""
    interval = POLL_SECONDS[options.tier] if poll is None else poll
    waiting = list(report.waiting)
    while waiting:
        state = archive.restore_status(waiting[0])
        if state == RESTORING:
            on_wait(len(waiting))
            sleep(interval)
        elif state == ARCHIVED:  # the copy expired, or the request was lost: ask again
            archive.request_restore(waiting[0], options.days, options.tier)
            sleep(interval)
        else:
            waiting.pop(0)
    report.waiting = []
