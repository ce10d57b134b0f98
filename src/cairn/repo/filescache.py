"""The files cache, on local disk: for each directory, its files' (inode, size, mtime, ctime,
content ids), and the tree the directory's listing made (its id and the listing's digest, see
ops/backup/reuse.py).

A file whose inode, size, mtime and ctime all match its cache entry (or fewer of them, as
``CachedFile.matches`` is told), and whose content blobs are
all still in the index, is taken as unchanged and not read at all. A directory is one row (its
entries packed with msgpack): it is read with one query and written with one statement once the
directory is done, so the cost is per directory, not per file. A directory whose entries did
not change only has its row's generation (backup run) updated; rows unseen for ``MAX_AGE`` runs
are dropped.

A directory's tree record lets a backup take the directory's tree blob as it is, without
building its nodes again, when the listing it reads now has the digest recorded with it
(ops/backup/reuse.py says why that is safe).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import NamedTuple

import msgpack

MAX_AGE = 20
TREE_RECORD = 64  # a directory's tree record: its tree id, then the digest of its listing
SCHEMA_VERSION = 4  # 4 added dirs.tree; a version 3 cache is upgraded in place
_BATCH_BYTES = 4 << 20  # entries buffered before they are written
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dirs (
    dir BLOB NOT NULL PRIMARY KEY,
    entries BLOB NOT NULL,
    gen INTEGER NOT NULL,
    tree BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
"""


class CachedFile(NamedTuple):
    """A file as a backup read or confirmed it. A tuple, not a dataclass: a directory's
    entries are decoded and compared in every backup, a million of them for a million files
    (half the time of a frozen dataclass's)."""

    inode: int
    size: int
    mtime: int
    ctime: int
    content: list[bytes]

    def matches(
        self, st: os.stat_result, ignore_inode: bool = False, ignore_ctime: bool = False
    ) -> bool:
        """Whether the file looks unchanged. ``ignore_inode`` leaves out the inode and the
        ctime, ``ignore_ctime`` the ctime (restic's options, for file systems where they
        change on their own: network and FUSE mounts)."""
        if self.size != st.st_size or self.mtime != st.st_mtime_ns:
            return False
        if not ignore_inode and self.inode != st.st_ino:
            return False
        return ignore_inode or ignore_ctime or self.ctime == st.st_ctime_ns


def _encode(entries: dict[bytes, CachedFile]) -> bytes:
    return msgpack.packb(
        {n: [e.inode, e.size, e.mtime, e.ctime, b"".join(e.content)] for n, e in entries.items()}
    )


def _decode(blob: bytes) -> dict[bytes, CachedFile]:
    out = {}
    make = CachedFile._make
    for name, (ino, size, mt, ct, c) in msgpack.unpackb(blob, strict_map_key=False).items():
        ids = [c] if len(c) == 32 else [c[i : i + 32] for i in range(0, len(c), 32)]
        out[name] = make((ino, size, mt, ct, ids))
    return out


class FilesCache:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        """``read_only``: lookups only (a dry run must not record what it did not store)."""
        self.read_only = read_only
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        schema = self._meta("schema")
        if schema == 3:
            # version 3 had no tree records: its file entries stay good
            self._db.execute("ALTER TABLE dirs ADD COLUMN tree BLOB")
        elif schema != SCHEMA_VERSION:
            # an older layout (or none): a cache may always be dropped
            self._db.executescript(
                "DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS dirs; DELETE FROM meta;"
            )
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        self.gen = (self._meta("gen") or 0) + 1
        self._writes: list[tuple[bytes, bytes, int, bytes | None]] = []
        self._pending = 0
        self._touches: list[tuple[int, bytes]] = []

    def _meta(self, key: str) -> int | None:
        row = self._db.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def has_dir(self, directory: bytes) -> bool:
        """Whether a backup recorded the directory (absolute path without a trailing '/')."""
        row = self._db.execute("SELECT 1 FROM dirs WHERE dir=?", (directory,)).fetchone()
        return row is not None

    def lookup_dir(self, directory: bytes) -> dict[bytes, CachedFile]:
        """Every cached entry of one directory (absolute path without a trailing '/')."""
        return self.lookup(directory)[0]

    def lookup(self, directory: bytes) -> tuple[dict[bytes, CachedFile], bytes | None]:
        """Every cached entry of one directory (absolute path without a trailing '/'), and its
        tree record: the tree id and the digest of the listing that made it (``TREE_RECORD``
        bytes), or None."""
        row = self._db.execute(
            "SELECT entries, tree FROM dirs WHERE dir=?", (directory,)
        ).fetchone()
        if row is None:
            return {}, None
        try:
            entries = _decode(row[0])
        except (ValueError, TypeError):
            return {}, None  # a damaged row: the directory's files are read again
        tree = row[1]
        if type(tree) is not bytes or len(tree) != TREE_RECORD:
            tree = None
        return entries, tree

    def save_dir(
        self,
        directory: bytes,
        entries: dict[bytes, CachedFile],
        previous: dict[bytes, CachedFile],
        complete: bool = True,
        tree: bytes | None = None,
        previous_tree: bytes | None = None,
    ) -> None:
        """Records a directory's files after a backup read or confirmed them.

        ``previous`` is what ``lookup_dir`` gave for it. ``complete``: ``entries`` covers every
        file of the directory (a walk), so entries of files that are gone are dropped; otherwise
        (single files given to back up) the other entries are kept. ``tree``: the directory's
        tree record (``TREE_RECORD`` bytes: tree id, then the listing's digest), or None for a
        directory whose tree may not be taken as it is next time; ``previous_tree`` is the
        record ``lookup`` gave."""
        if self.read_only:
            return
        if not complete:
            entries = {**previous, **entries}
            tree = previous_tree  # a record stays true: it names a listing, not this walk
        if entries == previous and tree == previous_tree:
            if previous or tree is not None:
                self._touches.append((self.gen, directory))
        else:
            blob = _encode(entries)
            self._writes.append((directory, blob, self.gen, tree))
            self._pending += len(blob)
        if self._pending >= _BATCH_BYTES or len(self._touches) >= 10_000:
            self._flush()

    def _flush(self) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO dirs VALUES (?,?,?,?)", self._writes)
            self._db.executemany("UPDATE dirs SET gen=? WHERE dir=?", self._touches)
        self._writes.clear()
        self._touches.clear()
        self._pending = 0

    def commit(self) -> None:
        """Makes this run's entries durable and drops directories unseen for too long."""
        if self.read_only:
            return
        self._flush()
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM dirs WHERE gen < ?", (self.gen - MAX_AGE,))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('gen', ?)", (self.gen,))

    def close(self) -> None:
        self._db.close()
