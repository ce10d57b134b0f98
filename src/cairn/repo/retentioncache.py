"""What this host knows of the retain-until dates of a repository's objects (docs/format.md
§14): a file ``object-lock`` in the repository's cache directory, name -> retain-until (UTC
seconds). Each date is a lower bound: what cairn itself set (a write, an extension) or read
from a listing (time written + days, less a tolerance for clocks). A date the store holds may
be later (another host extended it): cairn then extends again, which is harmless. A missing or
unreadable file is an empty cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import msgpack

VERSION = 1


class RetentionCache:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, datetime]:
        try:
            d = msgpack.unpackb(self.path.read_bytes())
            if d.get("version") != VERSION:
                return {}
            return {
                str(name): datetime.fromtimestamp(int(t), UTC) for name, t in d["until"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError, msgpack.UnpackException):
            return {}

    def save(self, known: Mapping[str, datetime]) -> None:
        """Replaces the file (atomically: a reader sees the old one or the new one)."""
        data = msgpack.packb(
            {"version": VERSION, "until": {n: int(t.timestamp()) for n, t in known.items()}}
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache: the next backup asks the store again
