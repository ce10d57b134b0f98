"""A retention policy keeps what restic keeps, for the same reasons: restic's own policy test
(its 103 snapshots, its 40 policies and the golden files of what each keeps, in
tests/fixtures/restic_policy.json) is the expected value here.

The golden files are restic's current ones (restic >= 0.16), whose rules cairn follows; restic
0.14 (Debian's) differs in two ways, both listed in README: it does not keep the oldest
snapshot when a rule has periods left ("oldest ..."), and it has no "unlimited" counts.

restic orders snapshots taken at the same time as the repository lists them; cairn by id (the
larger counts as newer), so that the result never depends on listing order. Two of restic's
snapshots share a time; the ids given here put them in the order restic's test lists them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cairn.model.snapshot import Snapshot
from cairn.ops.retention import UNLIMITED, Duration, Policy, apply_policy

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "restic_policy.json").read_text())


def d(text: str) -> Duration:
    return Duration.parse(text)


def within(**periods: str) -> tuple[tuple[str, Duration], ...]:
    return tuple((rule, d(text)) for rule, text in periods.items())


# restic's table, in its order: policy_keep_snapshots_N is the N-th
POLICIES = [
    Policy(),
    Policy(last=10),
    Policy(last=15),
    Policy(last=99),
    Policy(last=200),
    Policy(hourly=20),
    Policy(daily=3),
    Policy(daily=10),
    Policy(daily=30),
    Policy(last=5, daily=5),
    Policy(last=2, daily=10),
    Policy(weekly=2),
    Policy(weekly=4),
    Policy(daily=3, weekly=4),
    Policy(monthly=6),
    Policy(daily=2, weekly=2, monthly=6),
    Policy(yearly=10),
    Policy(daily=7, weekly=2, monthly=3, yearly=10),
    Policy(tags=(("foo",),)),
    Policy(tags=(("foo", "bar"),)),
    Policy(tags=(("foo",), ("bar",))),
    Policy(within=d("1d")),
    Policy(within=d("2d")),
    Policy(within=d("7d")),
    Policy(within=d("1m")),
    Policy(within=d("1m14d")),
    Policy(within=d("1y1d1m")),
    Policy(within=d("13d23h")),
    Policy(within=d("2m2h")),
    Policy(within=d("1y2m3d3h")),
    Policy(within_periods=within(hourly="1y2m3d3h")),
    Policy(within_periods=within(daily="1y2m3d3h")),
    Policy(within_periods=within(weekly="1y2m3d3h")),
    Policy(within_periods=within(monthly="1y2m3d3h")),
    Policy(within_periods=within(yearly="1y2m3d3h")),
    Policy(
        within=d("1h"),
        within_periods=within(hourly="1d", daily="7d", weekly="1m", monthly="1y", yearly="9999y"),
    ),
    Policy(last=UNLIMITED),
    Policy(last=UNLIMITED, hourly=UNLIMITED),
    Policy(hourly=UNLIMITED),
    Policy(daily=3, weekly=2, monthly=UNLIMITED, yearly=UNLIMITED),
]


def snapshots() -> list[Snapshot]:
    out = []
    count = len(FIXTURE["snapshots"])
    for nr, (time, tags) in enumerate(FIXTURE["snapshots"]):
        t = datetime.fromisoformat(time).replace(tzinfo=UTC)
        # earlier in restic's list: a larger id, so that equal times keep restic's order
        out.append(
            Snapshot(
                time=t, host="h", user="u", paths=["/"], tree=b"", tags=tags, id=f"{count - nr:04x}"
            )
        )
    return out


def restic_reason(reason: str) -> str:
    """cairn's reason as restic writes it (cairn names the period, restic does not)."""
    if reason == "last":
        return "last snapshot"
    if reason.startswith("tag "):
        return "has tags [" + ", ".join(reason[4:].split(",")) + "]"
    if reason.startswith("within "):
        return reason
    m = re.fullmatch(r"(oldest )?(hourly|daily|weekly|monthly|yearly) (.+?)( within \S+)?", reason)
    assert m is not None, reason
    return f"{m[1] or ''}{m[2]}{m[4] or ' snapshot'}"


def test_the_table_is_restics() -> None:
    assert len(FIXTURE["snapshots"]) == 103
    assert len(POLICIES) == len(FIXTURE["kept"]) == 40


@pytest.mark.parametrize("nr", range(40))
def test_restic_policy_golden_file(nr: int) -> None:
    snaps = snapshots()
    (group,) = apply_policy(snaps, POLICIES[nr], now=datetime(2030, 1, 1, tzinfo=UTC), tz=UTC)
    ours = [
        [
            dec.snapshot.time.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip("."),
            dec.snapshot.tags,
            [restic_reason(r) for r in dec.reasons],
        ]
        for dec in group.decisions
        if dec.keep
    ]
    assert ours == FIXTURE["kept"][nr]
