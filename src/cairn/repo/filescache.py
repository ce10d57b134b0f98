"""The files cache: (directory, name) -> (inode, size, mtime, ctime, content ids), on local disk.

A file whose inode, size, mtime and ctime all match its cache entry, and whose content blobs are
all still in the index, is taken as unchanged and not read at all. A directory's entries are
fetched with one query. Entries carry the generation (backup run) that last saw them; entries
unseen for ``MAX_AGE`` runs are dropped.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

MAX_AGE = 20
SCHEMA_VERSION = 2
_BATCH = 5000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    dir BLOB NOT NULL, name BLOB NOT NULL,
    inode INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime INTEGER NOT NULL, ctime INTEGER NOT NULL,
    content BLOB NOT NULL, gen INTEGER NOT NULL,
    PRIMARY KEY (dir, name)
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

    def matches(self, st: os.stat_result) -> bool:
        return (self.inode, self.size, self.mtime, self.ctime) == (
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )


def _split(path: bytes) -> tuple[bytes, bytes]:
    head, _, tail = path.rpartition(b"/")
    return head, tail


class FilesCache:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        """``read_only``: lookups only (a dry run must not record what it did not store)."""
        self.read_only = read_only
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        if self._meta("schema") != SCHEMA_VERSION:
            # an older layout (or none): a cache may always be dropped
            self._db.executescript("DROP TABLE IF EXISTS files; DELETE FROM meta;")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        self.gen = (self._meta("gen") or 0) + 1
        self._writes: list[tuple[bytes, bytes, int, int, int, int, bytes, int]] = []
        self._touches: list[tuple[int, bytes, bytes]] = []

    def _meta(self, key: str) -> int | None:
        row = self._db.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def lookup_dir(self, directory: bytes) -> dict[bytes, CachedFile]:
        """Every cached entry of one directory (absolute path without a trailing '/')."""
        rows = self._db.execute(
            "SELECT name, inode, size, mtime, ctime, content FROM files WHERE dir=?",
            (directory,),
        ).fetchall()
        return {
            name: CachedFile(ino, size, mt, ct, [c[i : i + 32] for i in range(0, len(c), 32)])
            for name, ino, size, mt, ct, c in rows
        }

    def lookup(self, path: bytes) -> CachedFile | None:
        directory, name = _split(path)
        return self.lookup_dir(directory).get(name)

    def touch(self, path: bytes) -> None:
        if self.read_only:
            return
        self._touches.append((self.gen, *_split(path)))
        if len(self._touches) >= _BATCH:
            self._flush()

    def record(
        self, path: bytes, inode: int, size: int, mtime: int, ctime: int, content: list[bytes]
    ) -> None:
        if self.read_only:
            return
        directory, name = _split(path)
        self._writes.append(
            (directory, name, inode, size, mtime, ctime, b"".join(content), self.gen)
        )
        if len(self._writes) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)", self._writes
            )
            self._db.executemany("UPDATE files SET gen=? WHERE dir=? AND name=?", self._touches)
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
