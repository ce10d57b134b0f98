"""Retention rules (ops/retention.py) on synthetic histories, against hand-checked tables.

Each table lists a history, one snapshot per line (id, time in UTC, and what the policy must
do with it: ``-`` for removed, else the reasons it is kept, ``;``-separated, in rule order:
tags, within, last, hourly, daily, weekly, monthly, yearly). Every expectation was worked out by
hand from the rules in the module docstring; the comments give the calendar facts they rely on.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.model.snapshot import Snapshot
from cairn.ops.retention import (
    UNLIMITED,
    Duration,
    GroupKey,
    Policy,
    PolicyError,
    apply_policy,
    parse_group_by,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def snap(
    id: str,
    time: str | datetime,
    host: str = "h",
    paths: tuple[str, ...] = ("/data",),
    tags: tuple[str, ...] = (),
) -> Snapshot:
    t = time if isinstance(time, datetime) else datetime.fromisoformat(time).replace(tzinfo=UTC)
    return Snapshot(
        time=t, host=host, user="u", paths=list(paths), tree=b"", tags=list(tags), id=id
    )


def parse_table(table: str) -> tuple[list[Snapshot], dict[str, list[str]]]:
    """History and expected reasons (empty list: removed) from a table."""
    snaps, expected = [], {}
    for line in table.strip().splitlines():
        id_, date, clock, rest = line.split(None, 3)
        tags: tuple[str, ...] = ()
        if rest.startswith("["):
            tag_text, rest = rest[1:].split("]", 1)
            tags = tuple(tag_text.split(","))
            rest = rest.strip()
        snaps.append(snap(id_, f"{date} {clock}", tags=tags))
        expected[id_] = [] if rest == "-" else [r.strip() for r in rest.split(";")]
    return snaps, expected


def decide(snaps, policy, **kw):  # type: ignore[no-untyped-def]
    """{id: reasons} for a single group."""
    groups = apply_policy(snaps, policy, now=kw.pop("now", NOW), **kw)
    assert len(groups) == 1
    return {d.snapshot.id: d.reasons for d in groups[0].decisions}


def check(table: str, policy: Policy, **kw) -> None:  # type: ignore[no-untyped-def]
    snaps, expected = parse_table(table)
    random.Random(7).shuffle(snaps)  # input order must not matter
    assert decide(snaps, policy, **kw) == expected


# ------------------------------------------------------------------ calendar boundaries
# 2025-12-28 is a Sunday in ISO week 2025-W52; Mon 2025-12-29 .. Sun 2026-01-04 is 2026-W01
# (2026-01-01 is a Thursday). Newest first: s6 opens every bucket; s5 shares all of them;
# s4 opens day 12-31, month 2025-12 and year 2025 (monthly and yearly are then used up);
# s3 shares s4's day; s2 opens 12-30 (daily used up); s1 is in W01 again; s0 opens 2025-W52.
YEAR_END = """
s0  2025-12-28 20:00  weekly 2025-W52
s1  2025-12-29 09:00  -
s2  2025-12-30 09:00  daily 2025-12-30
s3  2025-12-31 09:00  -
s4  2025-12-31 23:59  daily 2025-12-31; monthly 2025-12; yearly 2025
s5  2026-01-01 00:00  -
s6  2026-01-01 12:00  daily 2026-01-01; weekly 2026-W01; monthly 2026-01; yearly 2026
"""


def test_year_end_and_iso_week_that_straddles_two_years() -> None:
    check(YEAR_END, Policy(daily=3, weekly=2, monthly=2, yearly=2))


# 2026 starts on a Thursday, so it has an ISO week 53: Mon 2026-12-28 .. Sun 2027-01-03.
# Years are calendar years: w3 (2027-01-03) is in week 2026-W53 but in year 2027.
WEEK_53 = """
w0  2026-12-21 10:00  -
w1  2026-12-27 10:00  weekly 2026-W52
w2  2026-12-28 10:00  monthly 2026-12; yearly 2026
w3  2027-01-03 22:00  weekly 2026-W53
w4  2027-01-04 08:00  weekly 2027-W01; monthly 2027-01; yearly 2027
"""


def test_iso_week_53() -> None:
    check(WEEK_53, Policy(weekly=3, monthly=2, yearly=2))


# 2024 is a leap year. Newest first: l5 opens 03-31 and 2024-03; l4 opens 03-01; l3 opens
# 02-29 (daily used up) and 2024-02; l2 shares both; l1 is the oldest and monthly has one
# count left, so it is kept as the oldest of its month.
LEAP = """
l1  2024-02-28 12:00  oldest monthly 2024-02
l2  2024-02-29 08:00  -
l3  2024-02-29 20:00  daily 2024-02-29; monthly 2024-02
l4  2024-03-01 00:30  daily 2024-03-01
l5  2024-03-31 12:00  daily 2024-03-31; monthly 2024-03
"""


def test_leap_day_and_the_oldest_snapshot_rule() -> None:
    check(LEAP, Policy(daily=3, monthly=3))


# keep-within is relative to the newest snapshot (l5, 2024-03-31 12:00) and strict:
# minus 32 days is 2024-02-28 12:00 (29 days in February), so l1 at exactly that time goes.
LEAP_WITHIN_32D = """
l1  2024-02-28 12:00  -
l2  2024-02-29 08:00  within 32d
l3  2024-02-29 20:00  within 32d
l4  2024-03-01 00:30  within 32d
l5  2024-03-31 12:00  within 32d
"""

# Minus one month is "2024-02-31", which rolls over to 2024-03-02 12:00 (as restic's Go
# AddDate does), so only l5 is within.
LEAP_WITHIN_1M = """
l1  2024-02-28 12:00  -
l2  2024-02-29 08:00  -
l3  2024-02-29 20:00  -
l4  2024-03-01 00:30  -
l5  2024-03-31 12:00  within 1m
"""


def test_keep_within_counts_calendar_days_from_the_newest_snapshot() -> None:
    check(LEAP_WITHIN_32D, Policy(within=Duration.parse("32d")))
    check(LEAP_WITHIN_1M, Policy(within=Duration.parse("1m")))
    # "now" is far later than every snapshot: that changes nothing.
    check(LEAP_WITHIN_32D, Policy(within=Duration(days=32)), now=NOW + timedelta(days=9999))


# A snapshot dated after "now" (a host with a wrong clock) does not move the reference:
# f9 is kept (it is newer than the cutoff) but the cutoff is 2 days before l5, not before f9.
FUTURE = """
l1  2024-02-28 12:00  -
l4  2024-03-01 00:30  -
l5  2024-03-31 12:00  within 2d
f9  2031-06-01 00:00  within 2d
"""


def test_keep_within_ignores_snapshots_from_the_future_when_finding_the_newest() -> None:
    check(FUTURE, Policy(within=Duration(days=2)), now=datetime(2024, 4, 1, tzinfo=UTC))


def test_keep_within_keeps_everything_when_every_snapshot_is_in_the_future() -> None:
    snaps, _ = parse_table(FUTURE)
    decided = decide(snaps, Policy(within=Duration(days=2)), now=datetime(2020, 1, 1, tzinfo=UTC))
    assert all(r == ["within 2d"] for r in decided.values())


# ------------------------------------------------------------------ ties
# c0 and ff were taken at the same instant: the larger id counts as newer. 0a is half a
# second later, in the same second: it is the newest whatever its id.
TIES_LAST_2 = """
c0  2026-05-05 10:00:00.000000  -
ff  2026-05-05 10:00:00.000000  last
0a  2026-05-05 10:00:00.500000  last
"""
TIES_HOURLY = """
c0  2026-05-05 10:00:00.000000  -
ff  2026-05-05 10:00:00.000000  -
0a  2026-05-05 10:00:00.500000  hourly 2026-05-05 10:00
"""
TIES_SAME_INSTANT = """
c0  2026-05-05 10:00:00  -
ff  2026-05-05 10:00:00  last; daily 2026-05-05
"""


def test_ties_are_broken_by_time_then_id() -> None:
    check(TIES_LAST_2, Policy(last=2))
    check(TIES_HOURLY, Policy(hourly=1))
    check(TIES_SAME_INSTANT, Policy(last=1, daily=1))


# ------------------------------------------------------------------ several rules, tags
# m4 is kept by three rules at once; m3 only by keep-last (it shares m4's day); m2 opens the
# second day (daily used up); m1 only by its tag; m0 by nothing.
RULES = """
m0  2026-02-28 10:00  -
m1  2026-03-01 10:00  [important]  tag important
m2  2026-03-02 10:00  daily 2026-03-02
m3  2026-03-03 09:00  last
m4  2026-03-03 18:00  [db,important]  tag important; last; daily 2026-03-03
"""
# A tag list keeps only snapshots that carry all of its tags.
TAG_LIST = """
m0  2026-02-28 10:00  -
m1  2026-03-01 10:00  [important]  -
m2  2026-03-02 10:00  -
m3  2026-03-03 09:00  -
m4  2026-03-03 18:00  [db,important]  tag important,db
"""
# Two tag lists: either one keeps.
TWO_TAG_LISTS = """
m0  2026-02-28 10:00  -
m1  2026-03-01 10:00  [important]  tag important
m2  2026-03-02 10:00  -
m3  2026-03-03 09:00  -
m4  2026-03-03 18:00  [db,important]  tag db; tag important
"""


def test_several_rules_keep_the_same_snapshot_and_all_are_named() -> None:
    check(RULES, Policy(last=2, daily=2, tags=(("important",),)))


def test_keep_tag() -> None:
    check(TAG_LIST, Policy(tags=(("important", "db"),)))
    check(TWO_TAG_LISTS, Policy(tags=(("db",), ("important",))))


# Every day keeps its newest snapshot, however many days there are.
UNLIMITED_DAILY = """
u1  2026-07-01 08:00  daily 2026-07-01
u2  2026-07-02 08:00  -
u3  2026-07-02 09:00  daily 2026-07-02
u4  2026-07-09 07:00  daily 2026-07-09
"""


def test_unlimited_count() -> None:
    check(UNLIMITED_DAILY, Policy(daily=UNLIMITED))


# ------------------------------------------------------------------ time zones
# n1..n3 in New York (EST, UTC-5): n1 2026-03-01 07:00, n2 2026-03-01 22:00, n3 2026-03-02
# 05:00. In UTC n2 and n3 share 2026-03-02; in New York n1 and n2 share 2026-03-01.
ZONE_UTC = """
n1  2026-03-01 12:00  daily 2026-03-01
n2  2026-03-02 03:00  -
n3  2026-03-02 10:00  daily 2026-03-02
"""
ZONE_NEW_YORK = """
n1  2026-03-01 12:00  -
n2  2026-03-02 03:00  daily 2026-03-01
n3  2026-03-02 10:00  daily 2026-03-02
"""
# New York springs forward on 2026-03-08, so the day before the newest snapshot (03-08 12:00
# EDT = 16:00 UTC) began at 03-07 12:00 EST = 17:00 UTC: 23 hours, and d1 (16:30 UTC) is out.
# In UTC the cutoff is 03-07 16:00 and d1 is in.
DST_NEW_YORK = """
d1  2026-03-07 16:30  -
d2  2026-03-08 16:00  within 1d
"""
DST_UTC = """
d1  2026-03-07 16:30  within 1d
d2  2026-03-08 16:00  within 1d
"""


def test_periods_are_counted_in_the_given_time_zone() -> None:
    check(ZONE_UTC, Policy(daily=2), tz=UTC)
    check(ZONE_NEW_YORK, Policy(daily=2), tz=ZoneInfo("America/New_York"))
    check(DST_UTC, Policy(within=Duration(days=1)), tz=UTC)
    check(DST_NEW_YORK, Policy(within=Duration(days=1)), tz=ZoneInfo("America/New_York"))


def test_without_a_time_zone_the_local_zone_of_the_machine_is_used(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        check(ZONE_NEW_YORK, Policy(daily=2))
        check(DST_NEW_YORK, Policy(within=Duration(days=1)))
    finally:
        monkeypatch.undo()
        time.tzset()


# ------------------------------------------------------------------ groups
GROUPED = [
    snap("g1", "2026-01-01 10:00", host="a", paths=("/x",)),
    snap("g2", "2026-01-02 10:00", host="a", paths=("/x",)),
    snap("g3", "2026-01-03 10:00", host="a", paths=("/y",), tags=("t",)),
    snap("g4", "2026-01-04 10:00", host="b", paths=("/x",), tags=("t",)),
    snap("g5", "2026-01-05 10:00", host="b", paths=("/z", "/x")),
    snap("g6", "2026-01-06 10:00", host="b", paths=("/x", "/z"), tags=("t",)),
]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "host,paths",
            {
                GroupKey("a", ("/x",)): ("g2", ["g1"]),
                GroupKey("a", ("/y",)): ("g3", []),
                GroupKey("b", ("/x",)): ("g4", []),
                GroupKey("b", ("/x", "/z")): ("g6", ["g5"]),  # path order does not matter
            },
        ),
        ("host", {GroupKey("a"): ("g3", ["g2", "g1"]), GroupKey("b"): ("g6", ["g5", "g4"])}),
        (
            "paths",
            {
                GroupKey(paths=("/x",)): ("g4", ["g2", "g1"]),
                GroupKey(paths=("/x", "/z")): ("g6", ["g5"]),
                GroupKey(paths=("/y",)): ("g3", []),
            },
        ),
        (
            "tags",
            {GroupKey(tags=()): ("g5", ["g2", "g1"]), GroupKey(tags=("t",)): ("g6", ["g4", "g3"])},
        ),
        ("", {GroupKey(): ("g6", ["g5", "g4", "g3", "g2", "g1"])}),
    ],
)
def test_grouping(group_by: str, expected: dict[GroupKey, tuple[str, list[str]]]) -> None:
    groups = apply_policy(GROUPED, Policy(last=1), now=NOW, group_by=parse_group_by(group_by))
    got = {g.key: (g.kept[0].id, [s.id for s in g.removed]) for g in groups}
    assert got == expected
    assert all(len(g.kept) == 1 for g in groups)
    assert [g.key for g in groups] == sorted(
        expected, key=lambda k: (k.host or "", k.paths or (), k.tags or ())
    )


def test_keep_within_is_relative_to_the_newest_snapshot_of_each_group() -> None:
    snaps = [
        snap("a1", "2026-01-01 00:00", host="a"),
        snap("a2", "2026-01-10 00:00", host="a"),
        snap("b1", "2026-05-01 00:00", host="b"),
    ]
    groups = apply_policy(snaps, Policy(within=Duration(days=10)), now=NOW, group_by=["host"])
    assert [(g.key.host, [s.id for s in g.kept]) for g in groups] == [
        ("a", ["a2", "a1"]),
        ("b", ["b1"]),
    ]


# ------------------------------------------------------------------ parsing and validation
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2y5m7d3h", Duration(2, 5, 7, 3)),
        ("30d", Duration(days=30)),
        ("1y", Duration(years=1)),
        ("12h", Duration(hours=12)),
        ("3m1h", Duration(months=3, hours=1)),
    ],
)
def test_durations(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # restic takes the units in any order
        ("1y1d1m", Duration(years=1, months=1, days=1)),
        ("5d7m", Duration(months=7, days=5)),
        ("4h3d9m", Duration(months=9, days=3, hours=4)),
        ("1d2y", Duration(years=2, days=1)),
        (" 3h ", Duration(hours=3)),
    ],
)
def test_durations_in_any_order(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "5", "1w", "0d", "-1d", "1.5d", "d", "\u0661d", "1\u07c0d", "1d2d", "1d 2h", "1dx"],
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(PolicyError):
        Duration.parse(text)


def test_bad_policies() -> None:
    assert Policy().is_empty()
    assert not Policy(tags=(("x",),)).is_empty()
    with pytest.raises(PolicyError):
        Policy(daily=-2)
    with pytest.raises(PolicyError):
        Policy(tags=(("",),))
    with pytest.raises(PolicyError):
        parse_group_by("host,user")
    assert parse_group_by("host,path,tag") == ("host", "paths", "tags")
    assert parse_group_by("tags,hosts,paths") == ("host", "paths", "tags")
    assert parse_group_by("path") == ("paths",)
    with pytest.raises(PolicyError):
        apply_policy([snap("x", datetime(2026, 1, 1))], Policy(last=1), now=NOW)  # naive time
    assert Policy(
        last=3, weekly=UNLIMITED, within=Duration(days=2), tags=(("a", "b"),)
    ).describe() == ("keep 3 latest, all weekly, all within 2d of the newest, all tagged a,b")


# ------------------------------------------------------------------ properties
BASE = datetime(2023, 12, 20, tzinfo=UTC)
COUNT = st.one_of(st.integers(0, 6), st.just(UNLIMITED))


@st.composite
def histories(draw) -> list[Snapshot]:  # type: ignore[no-untyped-def]
    n = draw(st.integers(0, 40))
    offsets = draw(st.lists(st.integers(0, 800 * 24 * 3600), min_size=n, max_size=n))
    # few distinct seconds: many ties; few hosts and tags: several groups
    offsets = [o - o % draw(st.sampled_from([1, 3600, 86400])) for o in offsets]
    return [
        snap(
            f"{i:04x}{draw(st.integers(0, 255)):02x}",
            BASE + timedelta(seconds=o),
            host=draw(st.sampled_from(["a", "b"])),
            tags=tuple(draw(st.lists(st.sampled_from(["x", "y"]), max_size=2, unique=True))),
        )
        for i, o in enumerate(offsets)
    ]


policies = st.builds(
    Policy,
    last=COUNT,
    hourly=COUNT,
    daily=COUNT,
    weekly=COUNT,
    monthly=COUNT,
    yearly=COUNT,
    within=st.one_of(st.none(), st.builds(Duration, days=st.integers(1, 90))),
    tags=st.sampled_from([(), (("x",),), (("x", "y"),)]),
)
GROUP_BYS = st.sampled_from([(), ("host",), ("host", "tags"), ("host", "paths")])


@settings(max_examples=150, deadline=None)
@given(histories(), policies, GROUP_BYS)
def test_every_snapshot_is_decided_once_and_order_does_not_matter(snaps, policy, group_by) -> None:  # type: ignore[no-untyped-def]
    groups = apply_policy(snaps, policy, now=NOW, group_by=group_by)
    kept = [s.id for g in groups for s in g.kept]
    removed = [s.id for g in groups for s in g.removed]
    assert sorted(kept + removed) == sorted(s.id for s in snaps)
    assert not set(kept) & set(removed)
    shuffled = apply_policy(list(reversed(snaps)), policy, now=NOW, group_by=group_by)
    assert [(g.key, g.decisions) for g in shuffled] == [(g.key, g.decisions) for g in groups]
    if (policy.counts() or policy.within) and snaps:
        assert all(g.kept for g in groups)


@settings(max_examples=100, deadline=None)
@given(histories(), st.integers(1, 50))
def test_keep_last_n_keeps_exactly_the_n_newest(snaps, n) -> None:  # type: ignore[no-untyped-def]
    (group,) = apply_policy(snaps, Policy(last=n), now=NOW, group_by=()) or [None]
    if group is None:
        assert snaps == []
        return
    newest = sorted(snaps, key=lambda s: (s.time, s.id), reverse=True)[: min(n, len(snaps))]
    assert [s.id for s in group.kept] == [s.id for s in newest]


@settings(max_examples=100, deadline=None)
@given(
    histories(),
    policies,
    st.sampled_from(["last", "hourly", "daily", "weekly", "monthly", "yearly"]),
)
def test_a_larger_count_never_keeps_less(snaps, policy, rule) -> None:  # type: ignore[no-untyped-def]
    n = getattr(policy, rule)
    if n == UNLIMITED:
        return
    bigger = Policy(**{**policy.__dict__, rule: n + 1})
    before = {s.id for g in apply_policy(snaps, policy, now=NOW) for s in g.kept}
    after = {s.id for g in apply_policy(snaps, bigger, now=NOW) for s in g.kept}
    assert before <= after


@settings(max_examples=100, deadline=None)
@given(
    histories(),
    st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly"]),
    st.integers(1, 8),
)
def test_each_period_keeps_its_newest_snapshot(snaps, rule, n) -> None:  # type: ignore[no-untyped-def]
    (group,) = apply_policy(snaps, Policy(**{rule: n}), now=NOW, group_by=(), tz=UTC) or [None]
    if group is None:
        return
    by_period: dict[str, list[Snapshot]] = {}
    for d in group.decisions:
        for reason in d.reasons:
            if not reason.startswith("oldest"):
                by_period.setdefault(reason.split(" ", 1)[1], []).append(d.snapshot)
    periods = {_period(rule, s.time) for s in snaps}
    assert len(by_period) == min(n, len(periods))
    for period, kept in by_period.items():
        assert len(kept) == 1
        members = [s for s in snaps if _period(rule, s.time) == period]
        assert kept[0] is max(members, key=lambda s: (s.time, s.id))
    oldest = [d for d in group.decisions if any(r.startswith("oldest") for r in d.reasons)]
    assert len(by_period) + len(oldest) <= n
    assert all(d is group.decisions[-1] for d in oldest)


def _period(rule: str, t: datetime) -> str:
    t = t.astimezone(UTC)
    iso = t.isocalendar()
    return {
        "hourly": f"{t:%Y-%m-%d %H}:00",
        "daily": f"{t:%Y-%m-%d}",
        "weekly": f"{iso.year}-W{iso.week:02d}",
        "monthly": f"{t:%Y-%m}",
        "yearly": f"{t:%Y}",
    }[rule]
