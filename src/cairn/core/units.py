"""Parsing and formatting of sizes and durations for humans."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from cairn.core.errors import UsageError

_SIZE_RE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)
_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'32M', '1.5GiB', '4096' -> bytes (binary multiples)."""
    m = _SIZE_RE.fullmatch(text)
    if not m:
        raise UsageError(f"invalid size {text!r} (use e.g. 512K, 32M, 1G)")
    return int(float(m.group(1)) * _MULT[m.group(2).lower()])


_SECONDS_RE = re.compile(r"\s*([0-9]+)\s*([smh]?)\s*", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_seconds(text: str) -> int:
    """'90', '90s', '15m', '2h' -> seconds."""
    m = _SECONDS_RE.fullmatch(text)
    if not m:
        raise UsageError(f"invalid duration {text!r} (use e.g. 90s, 15m, 2h)")
    return int(m.group(1)) * _SECONDS[m.group(2).lower()]


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 snapshot', '2 snapshots', '0 snapshots'; ``plural`` for nouns not made with an s
    ('entry', 'entries')."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


_AGE_RE = re.compile(r"\s*([0-9]+)\s*([hdw]?)\s*", re.IGNORECASE)
_AGE = {"h": 3600, "": 86400, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> int:
    """'30d', '30' (days), '12h', '2w' -> seconds."""
    m = _AGE_RE.fullmatch(text)
    if not m:
        raise UsageError(f"invalid age {text!r} (use e.g. 30d, 12h, 2w)")
    return int(m.group(1)) * _AGE[m.group(2).lower()]


_AGO_RE = re.compile(r"\s*[0-9]+\s*[hdw]\s*", re.IGNORECASE)


def parse_time(text: str, now: datetime) -> datetime:
    """A point in time, time-zone aware: ISO 8601 ('2026-11-22', '2026-11-22 14:30',
    '2026-11-22T14:30:05.25', with an offset or 'Z' or without one: local time), the forms
    of `find --newest`, or an age that long before ``now`` ('12h', '3d', '2w')."""
    if _AGO_RE.fullmatch(text):
        return now - timedelta(seconds=parse_age(text))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"invalid time {text!r} (use e.g. 2026-11-22, '2026-11-22 14:30', "
            "2026-11-22T14:30:00+01:00, or an age: 12h, 3d)"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()
