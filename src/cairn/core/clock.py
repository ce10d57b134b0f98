"""The only place that asks for the current time, so tests can pin it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def monotonic() -> float:
    return time.monotonic()
