"""One place that writes to the terminal: human text, tables, JSON, warnings."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Sequence
from functools import cached_property
from typing import Any


def show_path(path: bytes | str) -> str:
    """A path for humans and JSON: undecodable bytes come back as surrogate escapes."""
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

    def line(self, text: str) -> None:
        if not self.quiet and not self.json_mode:
            sys.stdout.write(text + "\n")

    def raw_line(self, text: str) -> None:
        """Data output (listings) that must appear even with --quiet."""
        sys.stdout.write(text + "\n")

    def table(
        self, columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None
    ) -> None:
        table = _rich("table").Table(
            title=title, show_edge=False, pad_edge=False, box=None, header_style="bold"
        )
        for c in columns:
            table.add_column(c)
        for row in rows:
            table.add_row(*row)
        self.out.print(table)

    def warning(self, text: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(f"warning: {text}\n")

    def error(self, text: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(f"cairn: error: {text}\n")
