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
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        title: str | None = None,
        shorten: Sequence[str] = (),
    ) -> None:
        """A table. Without ``shorten``, long cells wrap within their column. With it, every
        line of a cell stays one line: where the width is known (a terminal, or $COLUMNS) the
        lines of the ``shorten`` columns are shortened in the middle, with an ellipsis, until
        the table fits; elsewhere (a pipe) lines are as long as they need to be."""
        if shorten:
            width = self.out.width if self.out.is_terminal or os.environ.get("COLUMNS") else None
            if title:
                self.raw_line(title)
            for line in fit_table(columns, rows, shorten, width):
                self.raw_line(line)
            return
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

    def error(self, text: str, exit_code: int | None = None) -> None:
        """One line on stderr; in JSON mode one object, ``{"error": ..., "exit_code": ...}``
        (the exit code the command ends with, when the error decides it)."""
        sys.stdout.flush()
        if self.json_mode:
            doc: dict[str, Any] = {"error": text}
            if exit_code is not None:
                doc["exit_code"] = exit_code
            sys.stderr.write(json.dumps(doc, ensure_ascii=True) + "\n")
        else:
            sys.stderr.write(f"cairn: error: {safe_text(text)}\n")


GAP = "  "  # between columns
ELLIPSIS = "\u2026"


def fit_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], shorten: Sequence[str], width: int | None
) -> list[str]:
    """The lines of a table (a cell's lines below one another), at most ``width`` columns
    wide if the ``shorten`` columns can be narrowed that far (to their heading or 8): the
    widest first, the last one of ``shorten`` counted at half its width (it keeps twice as
    much as the others)."""
    cells = [[safe_text(cell, keep="\n").split("\n") for cell in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(ln) for ln in lines))
    if width is not None:
        floor = [min(len(c), 8) if c in shorten else widths[i] for i, c in enumerate(columns)]
        weight = [2 if c == shorten[-1] else 1 for c in columns]
        excess = sum(widths) + len(GAP) * (len(columns) - 1) - width
        while excess > 0:
            slack = [k for k in range(len(columns)) if widths[k] > floor[k]]
            if not slack:
                break
            i = max(slack, key=lambda k: widths[k] / weight[k])
            widths[i] -= 1
            excess -= 1
    out = [GAP.join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row in cells:
        for n in range(max(len(lines) for lines in row)):
            parts = [
                _middle(lines[n] if n < len(lines) else "", w)
                for lines, w in zip(row, widths, strict=True)
            ]
            out.append(GAP.join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip())
    return out


def _middle(text: str, width: int) -> str:
    """``text`` in ``width`` characters: its start and its end around an ellipsis."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


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
