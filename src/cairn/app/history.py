"""The history of operations: every job, prune, check or restore started from `cairn serve`,
and every job `cairn run` ran (by hand, or by a timer or cron), with its outcome and log, in
SQLite (``serve.sqlite`` under the state directory, mode 0600): the web interface's history
page shows them all. Each call opens its own connection (SQLite serialises the writers), so the
server's threads and any number of `cairn run` processes can write at once.

A run still marked running whose process has gone (killed, or the machine restarted) is shown
as interrupted.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

HISTORY_FILE = "serve.sqlite"
WEB, COMMAND, TIMER = "web", "command", "timer"  # where a run was started from

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository TEXT NOT NULL,
    kind TEXT NOT NULL,          -- job, prune, forget, check, restore
    title TEXT NOT NULL,         -- what it was: "job home", "restore 1a2b3c4d:/etc to /srv"
    job TEXT,                    -- the job's name, for a job's runs
    started REAL NOT NULL,       -- seconds since the epoch
    finished REAL,
    outcome TEXT NOT NULL,       -- running, ok, partial, failed, cancelled, interrupted
    summary TEXT NOT NULL DEFAULT '',
    log TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, id);
"""
# added since: where the run was started from (web, command, timer), and the process running it
COLUMNS = {"origin": "TEXT NOT NULL DEFAULT 'web'", "pid": "INTEGER"}
FIELDS = "id, repository, kind, title, job, started, finished, outcome, summary, log, origin, pid"


def state_dir() -> Path:
    """Where the history (and the web's sessions) are kept: $CAIRN_STATE_DIR, else the user's
    state directory (``~/.local/state/cairn``)."""
    return Path(os.environ.get("CAIRN_STATE_DIR") or platformdirs.user_state_dir("cairn"))


def started_by() -> str:
    """Where this process was started from: a systemd unit (a timer's service: systemd sets
    INVOCATION_ID), or anything else (a terminal, a script, cron)."""
    return TIMER if os.environ.get("INVOCATION_ID") else COMMAND


@contextmanager
def private_db(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the SQLite database ``path``, made readable by its owner only (its
    directory 0700, the file 0600) before anything is written to it; what the block does is
    one transaction, and the connection is closed after it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:  # made by an older cairn, or by hand
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    db = sqlite3.connect(path, timeout=30)
    try:
        with db:
            yield db
    finally:
        db.close()


@dataclass(frozen=True)
class Run:
    id: int
    repository: str
    kind: str
    title: str
    job: str | None
    started: float
    finished: float | None
    outcome: str
    summary: str
    log: str
    origin: str = WEB
    pid: int | None = None

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


class History:
    def __init__(self, path: Path, server: bool = False) -> None:
        """``server``: opened by `cairn serve` as it starts: the operations of a server that
        stopped while they ran did not finish."""
        self.path = path
        with self._db() as db:
            db.executescript(SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            for name, kind in COLUMNS.items():
                if name not in have:
                    try:
                        db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError as e:  # another process added it meanwhile
                        if "duplicate column" not in str(e):
                            raise
            if server:
                db.execute(
                    "UPDATE runs SET outcome = 'interrupted' WHERE outcome = 'running'"
                    " AND origin = ?",
                    (WEB,),
                )

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return private_db(self.path)

    def begin(
        self,
        repository: str,
        kind: str,
        title: str,
        job: str | None,
        now: float,
        origin: str = WEB,
    ) -> int:
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO runs (repository, kind, title, job, started, outcome, origin, pid)"
                " VALUES (?, ?, ?, ?, ?, 'running', ?, ?)",
                (repository, kind, title, job, now, origin, os.getpid()),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish(self, run: int, outcome: str, summary: str, log: str, now: float) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE runs SET finished = ?, outcome = ?, summary = ?, log = ? WHERE id = ?",
                (now, outcome, summary, log, run),
            )

    def get(self, run: int) -> Run | None:
        rows = self._select("WHERE id = ?", (run,))
        return rows[0] if rows else None

    def recent(self, limit: int = 200) -> list[Run]:
        return self._select("ORDER BY id DESC LIMIT ?", (limit,))

    def last_of_job(self, job: str) -> Run | None:
        rows = self._select(
            "WHERE job = ? AND outcome != 'running' ORDER BY id DESC LIMIT 1", (job,)
        )
        return rows[0] if rows else None

    def last_of_kind(self, repository: str, kind: str) -> Run | None:
        rows = self._select(
            "WHERE repository = ? AND kind = ? AND outcome != 'running' ORDER BY id DESC LIMIT 1",
            (repository, kind),
        )
        return rows[0] if rows else None

    def _select(self, where: str, args: tuple[object, ...]) -> list[Run]:
        with self._db() as db:
            rows = db.execute(f"SELECT {FIELDS} FROM runs {where}", args).fetchall()
        runs = [Run(*row) for row in rows]
        return [
            Run(*row[:7], "interrupted", *row[8:])
            if r.outcome == "running" and r.origin != WEB and not _alive(r.pid)
            else r
            for row, r in zip(rows, runs, strict=True)
        ]
