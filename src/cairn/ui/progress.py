"""Progress of an operation, for people: a live line on a terminal; elsewhere (a log, cron) one
plain line on stderr every ``CAIRN_PROGRESS_INTERVAL`` seconds (60 by default) and one when a
phase that lasted that long ends; nothing with ``--quiet`` or ``--json``.

A line says the files and bytes done, of how many when the operation knows (a total still being
counted by a backup's scanner is shown as ``500+``), the percentage, the rate, and the time left
once the total is final::

    [0:42] backup: 1210 of 5000 files, 1.20 GiB of 4.00 GiB (30%), 29.26 MiB/s, ETA 1:38
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from typing import Any

from cairn.core.errors import UsageError
from cairn.core.units import format_bytes
from cairn.ui.escape import printable, safe_text
from cairn.ui.output import Output

INTERVAL_ENV = "CAIRN_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 60.0  # seconds between plain lines
BAR_WIDTH = 24


def plain_interval() -> float:
    """Seconds between plain progress lines (``CAIRN_PROGRESS_INTERVAL``, default 60)."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise UsageError(f"{INTERVAL_ENV}={text!r}: expected a number of seconds (0 or more)")
    return seconds


def clock_text(seconds: float) -> str:
    """0:05, 12:34, 1:02:03."""
    s = int(seconds)
    minutes, sec = divmod(s, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


class Counts:
    """One phase's counts and totals (None: not known), and how to say them."""

    def __init__(
        self, phase: str, files: int | None, nbytes: int | None, now: float, unit: str = "files"
    ) -> None:
        self.phase = phase
        self.unit = unit
        self.files = 0
        self.bytes = 0
        self.files_total = files
        self.bytes_total = nbytes
        self.complete = files is not None or nbytes is not None
        self.estimated = False  # the totals are an estimate (the parent snapshot's): "~"
        self.started = now

    def fraction(self) -> float | None:
        """Done, of the total: the lesser of the bytes' and the files' fractions (all the
        bytes of the last file are done before that file is)."""
        known = [
            min(1.0, done / total) if total else 1.0
            for done, total in ((self.bytes, self.bytes_total), (self.files, self.files_total))
            if total is not None
        ]
        return min(known) if known else None

    def line(self, now: float, bar: bool = False) -> str:
        elapsed = max(0.0, now - self.started)
        more = "" if self.complete else "+"
        about = "~" if self.estimated else ""
        parts = [
            _of(str(self.files), self.files_total, more, self.unit, about=about),
            _of(format_bytes(self.bytes), self.bytes_total, more, "", format_bytes, about),
        ]
        fraction = self.fraction()
        if fraction is not None:
            parts[-1] += f" ({int(fraction * 100)}%)"
        if elapsed > 0:
            parts.append(f"{format_bytes(self.bytes / elapsed)}/s")
        eta = self.eta(elapsed, fraction)
        if eta is not None:
            parts.append(f"ETA {clock_text(eta)}")
        head = f"[{clock_text(elapsed)}] {self.phase}:"
        if bar and fraction is not None:
            filled = int(fraction * BAR_WIDTH)
            head += " [" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"
        return f"{head} {', '.join(parts)}"

    def eta(self, elapsed: float, fraction: float | None) -> float | None:
        """Seconds left at the rate so far: only once the total is final."""
        if not self.complete or fraction is None or fraction <= 0 or elapsed <= 0:
            return None
        return elapsed * (1 - fraction) / fraction


def _of(done: str, total: int | None, more: str, noun: str, fmt: Any = str, about: str = "") -> str:
    """'3 of 12 files', '3 of 12+ files', '3 of ~12 files' (an estimate), '1 file',
    '1.20 MiB of 4.00 MiB'."""
    if total is None:
        return f"{done} {noun[:-1] if done == '1' else noun}" if noun else done
    text = f"{done} of {about}{fmt(total)}{more}"
    return f"{text} {noun}" if noun else text


class _Live:
    """What the terminal shows, drawn by rich a few times a second (never per event)."""

    def __init__(self, progress: TerminalProgress) -> None:
        self.progress = progress

    def __rich__(self) -> Any:
        text = importlib.import_module("rich.text").Text
        return text(self.progress.line(bar=True), no_wrap=True, overflow="ellipsis")


class TerminalProgress:
    """Implements cairn.app.events.Events (and so cairn.ops.progress.Progress)."""

    def __init__(self, output: Output, label: str, total_bytes: int | None = None) -> None:
        self.output = output
        self.warnings: list[tuple[bytes, str]] = []
        self.items = 0
        self._lock = threading.Lock()
        self._counts = Counts(label, None, total_bytes, time.monotonic())
        shown = not output.quiet and not output.json_mode
        self._live: Any = None
        self._interval: float | None = None  # plain lines: seconds between them
        self._last = self._counts.started  # when the last plain line was written
        self._printed = False  # a plain line of this phase was written
        if shown and sys.stderr.isatty():
            live = importlib.import_module("rich.live")  # only on a terminal
            self._live = live.Live(
                _Live(self), console=output.err, transient=True, refresh_per_second=4
            )
            self._live.start()
        elif shown:
            self._interval = plain_interval()
        # whether a total is ever shown (with --json or --quiet nothing is: a backup then
        # does not count its paths beforehand)
        self.shows_totals = shown

    # ------------------------------------------------------------------ Progress
    def item_done(self, path: bytes, size: int) -> None:
        with self._lock:
            self.items += 1
            self._counts.files += 1
            self._tick()

    def bytes_done(self, n: int) -> None:
        with self._lock:
            self._counts.bytes += n
            self._tick()

    def start(
        self, phase: str, files: int | None = None, nbytes: int | None = None, unit: str = "files"
    ) -> None:
        with self._lock:
            self._end_phase()
            self._counts = Counts(phase, files, nbytes, time.monotonic(), unit)
            self._last = self._counts.started
            self._printed = False

    def total(self, files: int, nbytes: int, complete: bool, estimated: bool = False) -> None:
        with self._lock:
            c = self._counts
            c.files_total, c.bytes_total, c.complete = files, nbytes, complete
            c.estimated = estimated

    def warning(self, path: bytes, message: str) -> None:
        with self._lock:
            self.warnings.append((path, message))
        text = f"{printable(path)}: {message}"
        if self._live is not None:
            self._live.console.print(f"warning: {safe_text(text)}", markup=False)
        else:
            self.output.warning(text)

    def status(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(safe_text(text), markup=False)
        else:
            self.output.line(text)

    def close(self) -> None:
        with self._lock:
            self._end_phase()
            self._interval = None
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ------------------------------------------------------------------ drawing
    def line(self, bar: bool = False) -> str:
        with self._lock:
            return self._counts.line(time.monotonic(), bar)

    def _tick(self) -> None:
        """A plain line if one is due (the lock is held)."""
        if self._interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._write(now)

    def _end_phase(self) -> None:
        """The last line of a phase that showed any, or lasted an interval (the lock is held)."""
        if self._interval is None:
            return
        now = time.monotonic()
        c = self._counts
        lasted = now - c.started >= self._interval
        if self._printed or (lasted and (c.files or c.bytes)):
            self._write(now)

    def _write(self, now: float) -> None:
        self._last = now
        self._printed = True
        sys.stdout.flush()
        sys.stderr.write(safe_text(self._counts.line(now)) + "\n")
        sys.stderr.flush()
