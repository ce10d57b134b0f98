"""Sessions and the login: an HttpOnly, SameSite=Strict cookie naming a session, and a CSRF
token per session that every request that changes something must carry (a form field
``csrf``, or the header ``X-CSRF-Token``).

Sessions are kept in SQLite (``sessions.sqlite`` under the state directory, mode 0600), so a
restart of the server logs no one out. The database holds a hash of each session id, never the
id itself (reading it gives no session), with its CSRF token, when it began and when it was last
used. A session ends at logout, ``IDLE`` after its last use, or ``LIFETIME`` after the login,
whichever comes first; and when the login secret changes (each session is tied to a hash of the
secret it logged in with).

Every endpoint but the login page and the static assets needs a session: without one, a page
(GET) redirects to the login page and anything else answers 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from cairn.app.history import private_db
from cairn.core import clock

COOKIE = "cairn_session"
OPEN_PATHS = ("/login", "/static/")
MAX_SESSIONS = 1000
LIFETIME = 7 * 86400  # seconds from the login
IDLE = 86400  # seconds from the last request
TOUCH = 300  # the last use is written at most this often (a write per page would be many)
SESSIONS_FILE = "sessions.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY,       -- SHA-256 of the session id (the cookie's value), hex
    login TEXT NOT NULL,         -- SHA-256 of the secret it logged in with, keyed, hex
    csrf TEXT NOT NULL,
    created REAL NOT NULL,       -- seconds since the epoch
    used REAL NOT NULL
);
"""


@dataclass(frozen=True)
class WebSession:
    id: str
    csrf: str


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class Sessions:
    def __init__(self, secret: str, path: Path) -> None:
        self._secret = secret.encode()
        self._login = hmac.new(self._secret, b"cairn serve sessions", hashlib.sha256).hexdigest()
        self.path = path
        with self._db() as db:
            db.executescript(SCHEMA)

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return private_db(self.path)

    def check_secret(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._secret)

    def create(self) -> WebSession:
        s = WebSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        now = clock.now().timestamp()
        with self._db() as db:
            self._expire(db, now)
            (count,) = db.execute("SELECT count(*) FROM sessions").fetchone()
            if count >= MAX_SESSIONS:  # the least recently used go first
                db.execute(
                    "DELETE FROM sessions WHERE hash IN"
                    " (SELECT hash FROM sessions ORDER BY used LIMIT ?)",
                    (count - MAX_SESSIONS + MAX_SESSIONS // 10,),
                )
            db.execute(
                "INSERT INTO sessions (hash, login, csrf, created, used) VALUES (?, ?, ?, ?, ?)",
                (_hash(s.id), self._login, s.csrf, now, now),
            )
        return s

    def get(self, request: Request) -> WebSession | None:
        sid = request.cookies.get(COOKIE)
        if not sid or len(sid) > 200:
            return None
        now = clock.now().timestamp()
        key = _hash(sid)
        with self._db() as db:
            row = db.execute(
                "SELECT csrf, used FROM sessions WHERE hash = ? AND login = ?"
                " AND created > ? AND used > ?",
                (key, self._login, now - LIFETIME, now - IDLE),
            ).fetchone()
            if row is None:
                return None
            csrf, used = row
            if now - used > TOUCH:
                db.execute("UPDATE sessions SET used = ? WHERE hash = ?", (now, key))
        return WebSession(sid, csrf)

    def drop(self, request: Request) -> None:
        sid = request.cookies.get(COOKIE)
        if sid:
            with self._db() as db:
                db.execute("DELETE FROM sessions WHERE hash = ?", (_hash(sid),))

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        db.execute(
            "DELETE FROM sessions WHERE created <= ? OR used <= ? OR login != ?",
            (now - LIFETIME, now - IDLE, self._login),
        )


def is_open(path: str) -> bool:
    return path == "/login" or path.startswith("/static/")


def refuse(request: Request) -> Response:
    if request.method in ("GET", "HEAD") and "text/event-stream" not in request.headers.get(
        "accept", ""
    ):
        return RedirectResponse("/login", status_code=303)
    return PlainTextResponse("not logged in\n", status_code=401)


async def form(request: Request) -> ImmutableMultiDict[str, str]:
    """The fields of a form posted as application/x-www-form-urlencoded (the only kind the
    pages post: no file uploads)."""
    body = await request.body()
    if len(body) > 1 << 20:
        return ImmutableMultiDict()
    return ImmutableMultiDict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def csrf_ok(session: WebSession, request: Request, fields: ImmutableMultiDict[str, str]) -> bool:
    given = request.headers.get("x-csrf-token") or fields.get("csrf", "")
    return hmac.compare_digest(given.encode(), session.csrf.encode())


def set_cookie(response: Response, session: WebSession, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=LIFETIME,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
