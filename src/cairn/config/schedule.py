"""A job's schedule: a standard five-field cron expression, in the local time zone.

``minute hour day-of-month month day-of-week``, with ``*``, lists, ranges, steps and English
names (``30 2 * * mon-fri``), or one of @hourly, @daily, @weekly, @monthly, @yearly. As in cron,
when both the day of the month and the day of the week are restricted, either one matching is
enough. Next run times come from croniter; the same schedule as systemd OnCalendar expressions
(a list, since cron's "either day" rule needs two of them) drives the installed timers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NAMES = {
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    "sun", "mon", "tue", "wed", "thu", "fri", "sat",
}  # fmt: skip
_FIELD = re.compile(r"[*0-9a-z,/-]+")
_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    expression: str  # as written
    cron: str  # five fields (aliases expanded)

    @classmethod
    def parse(cls, text: str) -> Schedule:
        expr = ALIASES.get(text.strip().lower(), text.strip())
        fields = expr.lower().split()
        if len(fields) != 5:
            raise ScheduleError(
                f"{text!r}: a cron expression has five fields: minute hour day-of-month month "
                "day-of-week (or use @hourly, @daily, @weekly, @monthly, @yearly)"
            )
        for f in fields:
            words = set(re.findall(r"[a-z]+", f))
            if not _FIELD.fullmatch(f) or not words <= _NAMES:
                raise ScheduleError(f"{text!r}: {f!r} is not a standard cron field")
        if not croniter.is_valid(expr):
            raise ScheduleError(f"{text!r} is not a valid cron expression")
        return cls(text.strip(), " ".join(fields))

    def next_runs(self, after: datetime, count: int = 1) -> list[datetime]:
        """The next ``count`` run times strictly after ``after`` (an aware datetime)."""
        it = croniter(self.cron, after.astimezone())
        return [it.get_next(datetime) for _ in range(count)]

    def on_calendar(self) -> list[str]:
        """systemd.time(7) calendar events that fire exactly when this schedule does."""
        minute, hour, dom, month, dow = croniter(self.cron).expanded
        time = f"{_values(hour)}:{_values(minute)}:00"
        date = f"*-{_values(month)}-{_values(dom)}"
        if dow == ["*"]:
            return [f"{date} {time}"]
        days = ",".join(dict.fromkeys(_WEEKDAYS[d] for d in sorted(int(x) for x in dow)))
        weekly = f"{days} *-{_values(month)}-* {time}"
        if dom == ["*"]:
            return [weekly]
        return [weekly, f"{date} {time}"]  # cron: either the weekday or the day of the month


def _values(expanded: list[int | str]) -> str:
    """[0, 1, 2, 3, 10] -> '00..03,10'; ['*'] -> '*'."""
    if expanded == ["*"]:
        return "*"
    values = sorted(int(v) for v in expanded)
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{run[0]:02d}..{run[-1]:02d}")
        else:
            parts.extend(f"{v:02d}" for v in run)
    return ",".join(parts)
