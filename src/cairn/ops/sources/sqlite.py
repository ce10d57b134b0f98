"""SQLite: an SQL dump of a live database, consistent, streamed, and without a temporary file.

The dump runs in this process (Python's sqlite3 module, no sqlite3 program needed) inside one
read transaction: the first read fixes the snapshot, and every table is read from it. In WAL
mode writers carry on meanwhile; in rollback-journal mode they wait (get SQLITE_BUSY) until the
dump ends, as with ``sqlite3 DB .dump``. The output is ``Connection.iterdump()``'s SQL, read
row by row, so memory stays flat whatever the database's size; restore it with
``cairn dump latest /NAME.sql | sqlite3 NEW.db``.

The backup API or ``VACUUM INTO`` would copy pages, but need a destination database: a file
(a temporary file) or memory (the whole database in RAM). A raw copy of the file, even inside a
read transaction, misses the pages still in the WAL. Hence the dump.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cairn.ops.sources.stream import IterSource, SourceFailed, StreamItem, stream_path

BLOCK = 1 << 20  # SQL text is handed on in blocks of about this size
BUSY_TIMEOUT = 60.0  # seconds to wait for a writer that holds the database locked


@dataclass(frozen=True)
class SqliteSource:
    path: str
    filename: str | None = None  # default: the database file's name without suffix, + .sql

    kind = "sqlite"

    def streams(self) -> list[StreamItem]:
        path = os.path.expanduser(self.path)
        name = self.filename or Path(path).stem + ".sql"
        source = IterSource(lambda: dump_sql(path), label=f"sqlite dump of {path}")
        return [StreamItem(stream_path(name), source)]


def dump_sql(path: str) -> Iterator[bytes]:
    """The database's SQL dump, in blocks; SourceFailed if it cannot be opened or read."""
    if not os.path.isfile(path):
        raise SourceFailed(f"sqlite database {path} does not exist")
    con = _connect(path)
    try:
        con.execute("BEGIN")
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
        block: list[str] = []
        size = 0
        for line in con.iterdump():
            block.append(line)
            size += len(line) + 1
            if size >= BLOCK:
                yield ("\n".join(block) + "\n").encode("utf-8", "surrogateescape")
                block, size = [], 0
        if block:
            yield ("\n".join(block) + "\n").encode("utf-8", "surrogateescape")
        con.execute("ROLLBACK")
    except sqlite3.Error as e:
        raise SourceFailed(f"sqlite database {path}: {e}") from None
    finally:
        con.close()


def _connect(path: str) -> sqlite3.Connection:
    """Opens without ever creating a file; read-write if allowed (a WAL database needs its
    shared-memory file), else read-only."""
    uri = "file:" + quote(os.path.abspath(path))
    last: sqlite3.Error | None = None
    for mode in ("rw", "ro"):
        con = None
        try:
            con = sqlite3.connect(
                f"{uri}?mode={mode}", uri=True, timeout=BUSY_TIMEOUT, isolation_level=None
            )
            # Text that is not valid UTF-8 passes through as the same bytes.
            con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return con
        except sqlite3.Error as e:
            last = e
            if con is not None:
                con.close()
    raise SourceFailed(f"sqlite database {path}: {last}")
