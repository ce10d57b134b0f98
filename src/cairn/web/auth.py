"""Sessions and the login: an HttpOnly, SameSite=Strict cookie naming a session held in
memory (a restart logs everyone out), and a CSRF token per session that every request that
changes something must carry (a form field ``csrf``, or the header ``X-CSRF-Token``).

Every endpoint but the login page and the static assets needs a session: without one, a page
(GET) redirects to the login page and anything else answers 401.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

COOKIE = "cairn_session"
OPEN_PATHS = ("/login", "/static/")
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class WebSession:
    id: str
    csrf: str


class Sessions:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self._lock = threading.Lock()
        self._sessions: dict[str, WebSession] = {}

    def check_secret(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._secret)

    def create(self) -> WebSession:
        s = WebSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:  # the oldest go first
                for old in list(self._sessions)[: MAX_SESSIONS // 10]:
                    del self._sessions[old]
            self._sessions[s.id] = s
        return s

    def get(self, request: Request) -> WebSession | None:
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        with self._lock:
            return self._sessions.get(sid)

    def drop(self, request: Request) -> None:
        sid = request.cookies.get(COOKIE)
        with self._lock:
            self._sessions.pop(sid or "", None)


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
        COOKIE, session.id, httponly=True, samesite="strict", secure=secure, path="/"
    )
