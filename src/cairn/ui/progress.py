"""Progress of a backup or restore: a live bar on a terminal, nothing otherwise."""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any

from cairn.ui.escape import printable, safe_text
from cairn.ui.output import Output


class TerminalProgress:
    """Implements cairn.app.events.Events (and so cairn.ops.progress.Progress)."""

    def __init__(self, output: Output, label: str, total_bytes: int | None = None) -> None:
        self.output = output
        self.warnings: list[tuple[bytes, str]] = []
        self.items = 0
        self._lock = threading.Lock()
        live = sys.stderr.isatty() and not output.quiet and not output.json_mode
        self._bar: Any = None
        if live:
            rp = importlib.import_module("rich.progress")  # only on a terminal
            self._bar = rp.Progress(
                rp.TextColumn(f"[bold]{label}"),
                rp.BarColumn(),
                rp.DownloadColumn(binary_units=True),
                rp.TransferSpeedColumn(),
                rp.TextColumn("{task.fields[items]} files"),
                rp.TimeElapsedColumn(),
                console=output.err,
                transient=True,
            )
            self._task = self._bar.add_task(label, total=total_bytes, items=0)
            self._bar.start()

    def item_done(self, path: bytes, size: int) -> None:
        with self._lock:
            self.items += 1
        if self._bar is not None:
            self._bar.update(self._task, items=self.items)

    def bytes_done(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def warning(self, path: bytes, message: str) -> None:
        with self._lock:
            self.warnings.append((path, message))
        text = f"{printable(path)}: {message}"
        if self._bar is not None:
            self._bar.console.print(f"warning: {safe_text(text)}", markup=False)
        else:
            self.output.warning(text)

    def status(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(safe_text(text), markup=False)
        else:
            self.output.line(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
