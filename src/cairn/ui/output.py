"""One place that writes to the terminal: human text, tables, JSON, warnings."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from cairn.ui.escape import safe_text


def show_path(path: bytes | str) -> str:
    """A path for JSON: undecodable bytes come back as surrogate escapes (which JSON escapes).
    For human output use ``printable`` (cairn.ui.escape)."""
    return os.fsdecode(path) if isinstance(path, bytes) else path


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 snapshot``, ``2 snapshots``, ``0 matches`` (``plural``: when not noun + "s")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _rich(module: str) -> Any:
    """rich is loaded only for tables and live progress: plain lines need none of it, and
    every command's start-up time counts."""
    return importlib.import_module(f"rich.{module}")


class Output:
    def __init__(self, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet

    @cached_property
    def out(self) -> Any:
        return _rich("console").Console(highlight=False, soft_wrap=True)

    @cached_property
    def err(self) -> Any:
        return _rich("console").Console(stderr=True, highlight=False, soft_wrap=True)

    def json(self, obj: Any) -> None:
        sys.stdout.write(json.dumps(obj, default=_default, ensure_ascii=True) + "\n")
        sys.stdout.flush()

    # Every human line goes through safe_text: names should be shown with ``printable`` by
    # the caller, and whatever was missed still cannot reach the terminal raw.
    def line(self, text: str) -> None:
        if not self.quiet and not self.json_mode:
            sys.stdout.write(safe_text(text) + "\n")

    def raw_line(self, text: str) -> None:
        """Data output (listings) that must appear even with --quiet."""
        sys.stdout.write(safe_text(text) + "\n")

    def table(
        self, columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None
    ) -> None:
        table = _rich("table").Table(
            title=title, show_edge=False, pad_edge=False, box=None, header_style="bold"
        )
        text = _rich("text").Text  # cells are text, never rich markup
        for c in columns:
            table.add_column(c)
        for row in rows:
            table.add_row(*(text(safe_text(cell, keep="\n")) for cell in row))
        self.out.print(table)

    def warning(self, text: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(f"warning: {safe_text(text)}\n")

    def error(self, text: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(f"cairn: error: {safe_text(text)}\n")


class _WarningLines(logging.Handler):
    """Prints what the operations log to the ``cairn`` logger as ``warning:`` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        Output().warning(record.getMessage())


def route_warnings() -> None:
    """Makes warnings logged by the layers below (which have no output of their own) appear
    as one ``warning:`` line each on stderr."""
    logger = logging.getLogger("cairn")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines(logging.WARNING))
        logger.setLevel(logging.WARNING)
        logger.propagate = False
