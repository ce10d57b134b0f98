"""A push's local state (docs/mirror.md §7), one SQLite file per source and mirror: the head
last pushed, each file's (size, mtime, ctime, inode, device) and the hash read then, and the
uploads done since the last commit. It is a cache: a file of another schema is started afresh,
and nothing in it is trusted beyond what the scan can confirm.

It is written ahead (SQLite's WAL) and synced only at checkpoints (``synchronous=NORMAL``): a
push records every file it uploads, and a sync per file costs more than the upload of a small
one. A crash of the process loses nothing; a crash of the machine may lose the last records,
whose uploads the next push then sends again."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cairn.ops.mirror.scan import Scanned
from cairn.storage.objects import Part, UploadJournal

SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
    ctime INTEGER NOT NULL, inode INTEGER NOT NULL, dev INTEGER NOT NULL, hash BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    path BLOB PRIMARY KEY, hash BLOB NOT NULL, etag TEXT NOT NULL, salt BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS multipart (
    name TEXT PRIMARY KEY, hash BLOB NOT NULL, upload_id TEXT NOT NULL, parts TEXT NOT NULL,
    salt BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trash (generation INTEGER PRIMARY KEY, time REAL NOT NULL);
"""


class MirrorState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # multipart uploads record their parts from the upload threads
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            for table in ("files", "uploads", "meta", "trash", "multipart"):
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
        row = self._one(
            "SELECT size, mtime, ctime, inode, dev, hash FROM files WHERE path = ?",
            (item.entry.path,),
        )
        seen = (item.entry.size, item.entry.mtime, item.ctime, item.inode, item.dev)
        if row is None or tuple(row[:5]) != seen:
            return None
        return bytes(row[5])

    def update(self, hashed: Iterable[Scanned], removed: Iterable[bytes]) -> None:
        """Records files as hashed (their entries carry the hash) and forgets others."""
        with self._transaction():
            self._executemany(
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
            self._executemany("DELETE FROM files WHERE path = ?", ((p,) for p in removed))

    def paths(self) -> Iterator[bytes]:
        """The paths recorded, a batch at a time (not a million rows at once)."""
        last = b""
        while True:
            rows = self._execute(
                "SELECT path FROM files WHERE path > ? ORDER BY path LIMIT 10000", (last,)
            )
            for (path,) in rows:
                yield bytes(path)
            if len(rows) < 10000:
                return
            last = bytes(rows[-1][0])

    def head(self) -> bytes | None:
        """The encoded head of the generation last pushed from this source."""
        row = self._one("SELECT v FROM meta WHERE k = 'head'")
        return None if row is None else bytes(row[0])

    def committed(self, head: bytes) -> None:
        """A generation is committed: its head is the one to start from, and the uploads
        recorded before it are in its manifest."""
        with self._transaction():
            self._execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (head,))
            self._execute("DELETE FROM uploads")

    def uploaded(self, path: bytes, hash: bytes, etag: str, salt: bytes | None = None) -> None:
        """An object written that no committed manifest names yet (``salt``: its header's, in
        an encrypted mirror)."""
        self._execute(
            "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?)", (path, hash, etag, salt)
        )

    def uploads(self) -> dict[bytes, tuple[bytes, str]]:
        rows = self._execute("SELECT path, hash, etag FROM uploads")
        return {bytes(p): (bytes(h), e) for p, h, e in rows}

    def upload_ids(self) -> set[str]:
        """The multipart uploads this state may still resume."""
        return {row[0] for row in self._execute("SELECT upload_id FROM multipart")}

    def upload_salts(self) -> dict[bytes, bytes]:
        """The salts of the uploads recorded with one."""
        rows = self._execute("SELECT path, salt FROM uploads WHERE salt IS NOT NULL")
        return {bytes(p): bytes(s) for p, s in rows}

    def hint(self) -> int:
        """The generation this source last wrote to the `latest` hint (0: none)."""
        row = self._one("SELECT v FROM meta WHERE k = 'hint'")
        return int(row[0]) if row else 0

    def hinted(self, generation: int) -> None:
        self._execute("INSERT OR REPLACE INTO meta VALUES ('hint', ?)", (generation,))

    def collected_below(self) -> int:
        """The generation below which heads and pieces were last collected (0: never)."""
        row = self._one("SELECT v FROM meta WHERE k = 'collected'")
        return int(row[0]) if row else 0

    def collect_from(self, generation: int) -> None:
        self._execute("INSERT OR REPLACE INTO meta VALUES ('collected', ?)", (generation,))

    def trashed(self, generation: int, when: float) -> None:
        """Objects went to the trash of ``generation`` at ``when`` (seconds since the epoch)."""
        self._execute("INSERT OR IGNORE INTO trash VALUES (?, ?)", (generation, when))

    def trash(self) -> list[tuple[int, float]]:
        return [(g, t) for g, t in self._execute("SELECT generation, time FROM trash")]

    def purged(self, generation: int) -> None:
        self._execute("DELETE FROM trash WHERE generation = ?", (generation,))

    def _execute(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self._lock:
            self._db.executemany(sql, rows)

    def _one(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        rows = self._execute(sql, args)
        return rows[0] if rows else None

    def journal(self, content: bytes, salt: bytes | None = None) -> UploadJournal:
        """Where the multipart uploads of the content hashing to ``content`` are recorded;
        in an encrypted mirror, of that content sealed under ``salt`` (docs/mirror.md §8.7)."""
        return _Journal(self, content, salt)

    def upload_salt(self, name: str, content: bytes) -> bytes | None:
        """The salt of the upload in parts of ``content`` to ``name`` under way, if one is
        recorded: sealing the same content under it again gives the same parts."""
        row = self._one("SELECT hash, salt FROM multipart WHERE name = ?", (name,))
        if row is None or row[1] is None or bytes(row[0]) != content:
            return None
        return bytes(row[1])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


class _Journal:
    """A multipart upload of one content (under one salt): an upload recorded for the name
    with other content, or sealed under another salt, is not offered for resuming (and is
    replaced when this one starts)."""

    def __init__(self, state: MirrorState, content: bytes, salt: bytes | None) -> None:
        self._state, self._content, self._salt = state, content, salt

    def lookup(self, name: str) -> tuple[str, Sequence[Part]] | None:
        row = self._state._one(
            "SELECT hash, upload_id, parts, salt FROM multipart WHERE name = ?", (name,)
        )
        if row is None or bytes(row[0]) != self._content:
            return None
        if (None if row[3] is None else bytes(row[3])) != self._salt:
            return None
        parts = [Part(n, etag, size, checksum) for n, etag, size, checksum in json.loads(row[2])]
        return row[1], parts

    def started(self, name: str, upload_id: str) -> None:
        self._state._execute(
            "INSERT OR REPLACE INTO multipart VALUES (?, ?, ?, '[]', ?)",
            (name, self._content, upload_id, self._salt),
        )

    def part_done(self, name: str, upload_id: str, part: Part) -> None:
        with self._state._transaction():
            row = self._state._one(
                "SELECT parts FROM multipart WHERE name = ? AND upload_id = ?", (name, upload_id)
            )
            if row is None:
                return
            parts = [p for p in json.loads(row[0]) if p[0] != part.number]
            parts.append([part.number, part.etag, part.size, part.checksum])
            self._state._execute(
                "UPDATE multipart SET parts = ? WHERE name = ?", (json.dumps(parts), name)
            )

    def finished(self, name: str) -> None:
        self._state._execute("DELETE FROM multipart WHERE name = ?", (name,))
