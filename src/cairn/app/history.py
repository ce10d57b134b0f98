"""Every operation the server ran, with its outcome and log, kept across restarts in SQLite
(``serve.sqlite`` under the state directory). Written by the operations' threads, read by the
pages: each call opens its own connection (SQLite serialises the writers)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


class History:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)
            # a server stopped while an operation ran: that run did not finish
            db.execute("UPDATE runs SET outcome = 'interrupted' WHERE outcome = 'running'")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def begin(self, repository: str, kind: str, title: str, job: str | None, now: float) -> int:
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO runs (repository, kind, title, job, started, outcome)"
                " VALUES (?, ?, ?, ?, ?, 'running')",
                (repository, kind, title, job, now),
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
            rows = db.execute(
                "SELECT id, repository, kind, title, job, started, finished, outcome, summary, log"
                f" FROM runs {where}",
                args,
            ).fetchall()
        return [Run(*row) for row in rows]
