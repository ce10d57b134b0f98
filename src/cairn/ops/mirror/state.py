"""A push's local state (docs/mirror.md §7), one SQLite file per source and mirror: the head
last pushed, each file's (size, mtime, ctime, inode, device) and the hash read then, and the
uploads done since the last commit. It is a cache: a file of another schema is started afresh,
and nothing in it is trusted beyond what the scan can confirm."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from cairn.ops.mirror.scan import Scanned

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
    ctime INTEGER NOT NULL, inode INTEGER NOT NULL, dev INTEGER NOT NULL, hash BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    path BLOB PRIMARY KEY, hash BLOB NOT NULL, etag TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
"""


class MirrorState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            for table in ("files", "uploads", "meta"):
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MirrorState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def known_hash(self, item: Scanned) -> bytes | None:
        """The hash of a file the scan found as it was when last hashed, else None."""
        row = self._db.execute(
            "SELECT size, mtime, ctime, inode, dev, hash FROM files WHERE path = ?",
            (item.entry.path,),
        ).fetchone()
        seen = (item.entry.size, item.entry.mtime, item.ctime, item.inode, item.dev)
        if row is None or tuple(row[:5]) != seen:
            return None
        return bytes(row[5])

    def update(self, hashed: Iterable[Scanned], removed: Iterable[bytes]) -> None:
        """Records files as hashed (their entries carry the hash) and forgets others."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        i.entry.path,
                        i.entry.size,
                        i.entry.mtime,
                        i.ctime,
                        i.inode,
                        i.dev,
                        i.entry.hash,
                    )
                    for i in hashed
                    if i.entry.hash is not None
                ),
            )
            self._db.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in removed))

    def paths(self) -> Iterator[bytes]:
        for (path,) in self._db.execute("SELECT path FROM files"):
            yield bytes(path)

    def head(self) -> bytes | None:
        """The encoded head of the generation last pushed from this source."""
        row = self._db.execute("SELECT v FROM meta WHERE k = 'head'").fetchone()
        return None if row is None else bytes(row[0])

    def committed(self, head: bytes) -> None:
        """A generation is committed: its head is the one to start from, and the uploads
        recorded before it are in its manifest."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (head,))
            self._db.execute("DELETE FROM uploads")

    def uploaded(self, path: bytes, hash: bytes, etag: str) -> None:
        """An object written that no committed manifest names yet."""
        self._db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?)", (path, hash, etag))

    def uploads(self) -> dict[bytes, tuple[bytes, str]]:
        rows = self._db.execute("SELECT path, hash, etag FROM uploads")
        return {bytes(p): (bytes(h), e) for p, h, e in rows}

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
