"""Retention policies: which snapshots a ``forget`` keeps, and why. Pure: no I/O, no clock.

The rules are restic's (``restic forget``), so a policy means the same in both tools:

- Snapshots are split into groups (by host, paths and/or tags) and each group is judged alone.
- Within a group snapshots are taken newest first; ties on time are broken by id (the larger id
  counts as newer), so the result never depends on listing order.
- ``keep_last n`` keeps the n newest snapshots.
- ``keep_hourly/daily/weekly/monthly/yearly n``: walking newest first, each time the snapshot
  falls in a new hour/day/ISO week/month/year than the previous kept one of that rule, it is
  kept, until n such periods have been kept. So each period keeps its newest snapshot, and
  periods without snapshots are skipped, not counted. Weeks are ISO 8601 weeks (Monday first;
  the week of Dec 31 may belong to the next year, and some years have a week 53).
- If a counting rule still has periods left when the walk reaches the oldest snapshot of the
  group, that snapshot is kept too ("oldest daily ..."): a young history keeps its beginning.
- ``keep_within d`` keeps every snapshot newer than d before the newest snapshot of the group
  (calendar arithmetic on the local date, as restic: 2024-03-31 minus 1m is 2024-03-02), not
  before "now", so a repository whose backups stopped is not emptied by time passing.
  Snapshots dated after ``now`` (a host with a wrong clock) are ignored when finding the newest.
- ``within_periods`` (``("daily", 7d)``: restic's ``--keep-within-daily 7d``): among the
  snapshots ``keep_within`` of that duration would keep, the newest of each period (and the
  oldest of them, if its period already has one, as the counting rules do).
- ``keep_tags``: every snapshot that has all the tags of at least one of the lists.
- Counts may be ``UNLIMITED``. Rules add up: a snapshot is kept if any rule keeps it, and every
  rule that keeps it is listed as a reason.

Periods are counted in one time zone for all snapshots: ``tz`` if given, else the local time
zone of the machine running forget (the zone ``cairn snapshots`` shows times in). restic uses
the offset recorded in each snapshot; cairn records UTC, which would put every day boundary at
midnight UTC, so it converts instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Generic, Protocol, TypeVar

UNLIMITED = -1
PERIOD_RULES = ("hourly", "daily", "weekly", "monthly", "yearly")
GROUP_FIELDS = ("host", "paths", "tags")
_DURATION_PART = re.compile(r"([0-9]+)([ymdh])", re.ASCII)
_GROUP_SPELLINGS = {"host": "host", "hosts": "host", "path": "paths", "paths": "paths"}
_GROUP_SPELLINGS |= {"tag": "tags", "tags": "tags"}


class PolicyError(ValueError):
    """A policy or duration that cannot be applied."""


class SnapshotLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def host(self) -> str: ...
    @property
    def paths(self) -> Sequence[str]: ...
    @property
    def tags(self) -> Sequence[str]: ...


S = TypeVar("S", bound=SnapshotLike)


@dataclass(frozen=True)
class Duration:
    """A calendar duration: years, months, days and hours, written like ``2y5m7d3h``."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Units in any order (``1y1d1m``), ASCII digits only, each unit at most once."""
        body = text.strip()
        fields: dict[str, int] = {}
        pos = 0
        while pos < len(body):
            m = _DURATION_PART.match(body, pos)
            if m is None:
                raise PolicyError(f"invalid duration {text!r} (use e.g. 30d, 2y5m7d3h: y m d h)")
            if m.group(2) in fields:
                raise PolicyError(f"the duration {text!r} gives the unit {m.group(2)} twice")
            fields[m.group(2)] = int(m.group(1))
            pos = m.end()
        if not fields:
            raise PolicyError(f"invalid duration {text!r} (use e.g. 30d, 2y5m7d3h: y m d h)")
        d = cls(*(fields.get(unit, 0) for unit in "ymdh"))
        if d.is_zero():
            raise PolicyError(f"the duration {text!r} is zero")
        return d

    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def before(self, moment: datetime, tz: tzinfo | None) -> datetime:
        """``moment`` minus this duration: calendar fields on the local date, then hours.

        Overflowing days roll into the next month, as Go's ``AddDate`` (and so restic) does."""
        local = moment.astimezone(tz)
        months = local.year * 12 + (local.month - 1) - self.years * 12 - self.months
        year, month = divmod(months, 12)
        try:
            day = date(year, month + 1, 1) + timedelta(days=local.day - 1 - self.days)
            naive = datetime.combine(day, local.time().replace(tzinfo=None))
            wall = naive.astimezone() if tz is None else naive.replace(tzinfo=tz)
            return wall.astimezone(UTC) - timedelta(hours=self.hours)
        except (ValueError, OverflowError, OSError):  # before year 1: everything is within
            return datetime.min.replace(tzinfo=UTC)

    def __str__(self) -> str:
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{n}{unit}" for n, unit in parts if n) or "0h"


@dataclass(frozen=True)
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    tags: tuple[tuple[str, ...], ...] = ()  # keep a snapshot with all tags of any one entry
    # ("daily", 7d): the newest snapshot of each day within 7d of the group's newest
    within_periods: tuple[tuple[str, Duration], ...] = ()

    def __post_init__(self) -> None:
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            n = getattr(self, name)
            if n < 0 and n != UNLIMITED:
                raise PolicyError(f"keep-{name} must be a count or unlimited, not {n}")
        if any(not t or any(not tag for tag in t) for t in self.tags):
            raise PolicyError("keep-tag needs non-empty tags")
        if self.within is not None and self.within.is_zero():
            raise PolicyError("keep-within needs a non-zero duration")
        for rule, duration in self.within_periods:
            if rule not in PERIOD_RULES:
                raise PolicyError(f"no keep-within-{rule} (use {', '.join(PERIOD_RULES)})")
            if duration.is_zero():
                raise PolicyError(f"keep-within-{rule} needs a non-zero duration")

    def is_empty(self) -> bool:
        return not (self.counts() or self.within or self.tags or self.within_periods)

    def counts(self) -> list[tuple[str, int]]:
        """The counting rules that are set, in the order they are applied."""
        rules = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
        return [(r, getattr(self, r)) for r in rules if getattr(self, r)]

    def describe(self) -> str:
        parts = [
            f"{'all' if n == UNLIMITED else n} {'latest' if rule == 'last' else rule}"
            for rule, n in self.counts()
        ]
        if self.within:
            parts.append(f"all within {self.within} of the newest")
        parts += [f"{rule} within {d} of the newest" for rule, d in self.within_periods]
        parts += [f"all tagged {','.join(t)}" for t in self.tags]
        return "keep " + ", ".join(parts) if parts else "keep nothing"


@dataclass(frozen=True)
class GroupKey:
    """What the snapshots of a group share; ``None`` for a field the grouping ignores."""

    host: str | None = None
    paths: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None

    def describe(self) -> str:
        parts = []
        if self.host is not None:
            parts.append(f"host {self.host}")
        if self.paths is not None:
            parts.append(f"paths [{', '.join(self.paths)}]")
        if self.tags is not None:
            parts.append(f"tags [{', '.join(self.tags)}]")
        return ", ".join(parts) or "all snapshots"


@dataclass
class Decision(Generic[S]):
    snapshot: S
    reasons: list[str] = field(default_factory=list)  # empty: removed

    @property
    def keep(self) -> bool:
        return bool(self.reasons)


@dataclass
class GroupResult(Generic[S]):
    key: GroupKey
    decisions: list[Decision[S]]  # newest first

    @property
    def kept(self) -> list[S]:
        return [d.snapshot for d in self.decisions if d.keep]

    @property
    def removed(self) -> list[S]:
        return [d.snapshot for d in self.decisions if not d.keep]


def parse_group_by(text: str) -> tuple[str, ...]:
    """``host,paths`` -> ('host', 'paths'); the empty string puts all snapshots in one group.

    restic's spellings are taken too: ``host,path,tag`` and ``hosts,paths,tags``."""
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fields if f not in _GROUP_SPELLINGS]
    if bad:
        raise PolicyError(f"cannot group by {', '.join(bad)} (use host, paths, tags)")
    named = {_GROUP_SPELLINGS[f] for f in fields}
    return tuple(f for f in GROUP_FIELDS if f in named)


def group_key(snap: SnapshotLike, group_by: Iterable[str]) -> GroupKey:
    by = set(group_by)
    return GroupKey(
        host=snap.host if "host" in by else None,
        paths=tuple(sorted(snap.paths)) if "paths" in by else None,
        tags=tuple(sorted(set(snap.tags))) if "tags" in by else None,
    )


def apply_policy(
    snapshots: Iterable[S],
    policy: Policy,
    *,
    now: datetime,
    group_by: Iterable[str] = ("host", "paths"),
    tz: tzinfo | None = None,
) -> list[GroupResult[S]]:
    """Every group of ``snapshots`` (sorted by key) with a keep/remove decision per snapshot."""
    groups: dict[GroupKey, list[S]] = {}
    fields = tuple(group_by)
    for snap in snapshots:
        if snap.time.tzinfo is None:
            raise PolicyError(f"snapshot {snap.id}: time without a time zone")
        groups.setdefault(group_key(snap, fields), []).append(snap)
    return [
        GroupResult(key, _judge(groups[key], policy, now, tz))
        for key in sorted(groups, key=_sort_key)
    ]


def _sort_key(key: GroupKey) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    return key.host or "", key.paths or (), key.tags or ()


_PERIODS = {
    "hourly": lambda t: t.strftime("%Y-%m-%d %H:00"),
    "daily": lambda t: t.strftime("%Y-%m-%d"),
    "weekly": lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2]),
    "monthly": lambda t: t.strftime("%Y-%m"),
    "yearly": lambda t: t.strftime("%Y"),
}


def _judge(snaps: list[S], policy: Policy, now: datetime, tz: tzinfo | None) -> list[Decision[S]]:
    ordered = sorted(snaps, key=lambda s: (s.time, s.id), reverse=True)
    past = [s.time for s in ordered if s.time <= now]

    def cut(d: Duration) -> datetime | None:
        return d.before(past[0], tz) if past else None

    cutoff = cut(policy.within) if policy.within is not None else None
    periodic = [(rule, d, cut(d)) for rule, d in policy.within_periods]
    within_last: dict[str, str | None] = {rule: None for rule, _ in policy.within_periods}
    left = dict(policy.counts())
    last_period: dict[str, str | None] = dict.fromkeys(left)
    decisions = []
    for nr, snap in enumerate(ordered):
        reasons = [f"tag {','.join(t)}" for t in policy.tags if set(t) <= set(snap.tags)]
        if policy.within is not None and (cutoff is None or snap.time > cutoff):
            reasons.append(f"within {policy.within}")
        local = snap.time.astimezone(tz)
        oldest = nr == len(ordered) - 1
        for rule in left:
            if left[rule] == 0:
                continue
            period = f"#{nr}" if rule == "last" else _PERIODS[rule](local)
            if period == last_period[rule] and not oldest:
                continue
            if rule == "last":
                reasons.append("last")
            elif period == last_period[rule]:
                reasons.append(f"oldest {rule} {period}")
            else:
                reasons.append(f"{rule} {period}")
            last_period[rule] = period
            if left[rule] > 0:
                left[rule] -= 1
        for rule, d, since in periodic:
            if since is not None and snap.time <= since:
                continue
            period = _PERIODS[rule](local)
            if period == within_last[rule] and not oldest:
                continue
            oldest_of = "oldest " if period == within_last[rule] else ""
            reasons.append(f"{oldest_of}{rule} {period} within {d}")
            within_last[rule] = period
        decisions.append(Decision(snap, reasons))
    return decisions
