"""Which blob of the destination holds what a blob of the source holds, remembered.

Blob ids are keyed hashes (docs/format.md §6), so two repositories with different id keys
give the same data different ids. A copy between them reads a blob's data to learn its id in
the destination; this map keeps what it learnt, so that a later copy of a snapshot sharing
that data (tomorrow's backup) reads only what is new. It lives in the destination's cache
directory, one file per source repository, and is only ever a hint: an id it gives is used
only when the destination's index holds that blob, and read again otherwise (pruned since,
or the map is from an interrupted copy).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from cairn.core.errors import UsageError

_BATCH = 900  # below SQLite's default limit of host parameters per statement


class IdMap:
    """Source blob id -> destination blob id; in memory when ``path`` is None."""

    def __init__(self, path: Path | None) -> None:
        try:
            self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS blobs (src BLOB PRIMARY KEY, dst BLOB NOT NULL)"
                " WITHOUT ROWID"
            )
            self._db.commit()
        except sqlite3.Error as e:
            raise UsageError(f"cannot use the copy map {path}: {e}") from None

    def lookup(self, src_ids: list[bytes]) -> dict[bytes, bytes]:
        """The known destination ids of ``src_ids``."""
        out: dict[bytes, bytes] = {}
        for i in range(0, len(src_ids), _BATCH):
            part = src_ids[i : i + _BATCH]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT src, dst FROM blobs WHERE src IN ({marks})", part)
            out.update(rows)
        return out

    def add(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO blobs (src, dst) VALUES (?, ?)", pairs)
        self._db.commit()

    def close(self) -> None:
        self._db.close()
