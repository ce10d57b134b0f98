"""The files cache: path -> (inode, size, mtime, ctime, content ids), on local disk.

A file whose inode, size, mtime and ctime all match its cache entry, and whose content blobs are
all still in the index, is taken as unchanged and not read at all. Entries carry the generation
(backup run) that last saw them; entries unseen for ``MAX_AGE`` runs are dropped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

MAX_AGE = 20
_BATCH = 5000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY,
    inode INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime INTEGER NOT NULL, ctime INTEGER NOT NULL,
    content BLOB NOT NULL, gen INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class CachedFile:
    inode: int
    size: int
    mtime: int
    ctime: int
    content: list[bytes]

    def matches(self, inode: int, size: int, mtime: int, ctime: int) -> bool:
        return (self.inode, self.size, self.mtime, self.ctime) == (inode, size, mtime, ctime)


class FilesCache:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        """``read_only``: lookups only (a dry run must not record what it did not store)."""
        self.read_only = read_only
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT v FROM meta WHERE k='gen'").fetchone()
        self.gen = (row[0] if row else 0) + 1
        self._writes: list[tuple[bytes, int, int, int, int, bytes, int]] = []
        self._touches: list[tuple[int, bytes]] = []

    def lookup(self, path: bytes) -> CachedFile | None:
        row = self._db.execute(
            "SELECT inode, size, mtime, ctime, content FROM files WHERE path=?", (path,)
        ).fetchone()
        if row is None:
            return None
        raw = row[4]
        return CachedFile(
            row[0], row[1], row[2], row[3], [raw[i : i + 32] for i in range(0, len(raw), 32)]
        )

    def touch(self, path: bytes) -> None:
        if self.read_only:
            return
        self._touches.append((self.gen, path))
        if len(self._touches) >= _BATCH:
            self._flush()

    def record(
        self, path: bytes, inode: int, size: int, mtime: int, ctime: int, content: list[bytes]
    ) -> None:
        if self.read_only:
            return
        self._writes.append((path, inode, size, mtime, ctime, b"".join(content), self.gen))
        if len(self._writes) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?)", self._writes
            )
            self._db.executemany("UPDATE files SET gen=? WHERE path=?", self._touches)
        self._writes.clear()
        self._touches.clear()

    def commit(self) -> None:
        """Makes this run's entries durable and drops entries unseen for too long."""
        if self.read_only:
            return
        self._flush()
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM files WHERE gen < ?", (self.gen - MAX_AGE,))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('gen', ?)", (self.gen,))

    def close(self) -> None:
        self._db.close()
