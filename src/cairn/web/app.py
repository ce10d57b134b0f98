"""The ASGI application: the endpoints of ``pages`` and ``actions``, the session check in front
of every one of them but the login and the static assets, and errors turned into pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from cairn.app.history import HISTORY_FILE, History
from cairn.core.errors import CairnError, NotFoundError, UsageError
from cairn.web import actions, auth, filters, pages
from cairn.web.operations import Busy, Operations
from cairn.web.repos import Repos
from cairn.web.settings import Settings

HERE = Path(__file__).parent


@dataclass
class Server:
    settings: Settings
    repos: Repos
    history: History
    operations: Operations
    sessions: auth.Sessions
    templates: Jinja2Templates
    storage_cache: dict[str, Any] = field(default_factory=dict)  # pages._storage

    def render(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        session = auth_session(request)
        context = {
            "csrf": session.csrf if session else "",
            "repositories": self.repos.names(),
            **context,
        }
        return self.templates.TemplateResponse(request, name, context, status_code=status)


def auth_session(request: Request) -> auth.WebSession | None:
    return getattr(request.state, "session", None)


class SessionGate:
    """Lets a request through only with a session (or to the login page, the assets)."""

    def __init__(self, app: ASGIApp, sessions: auth.Sessions) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session = self.sessions.get(request)
        if session is None and not auth.is_open(scope["path"]):
            await auth.refuse(request)(scope, receive, send)
            return
        scope.setdefault("state", {})["session"] = session
        await self.app(scope, receive, send)


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    filters.install(env)
    return Jinja2Templates(env=env)


def create_app(settings: Settings) -> Starlette:
    history = History(settings.state_dir / HISTORY_FILE, server=True)
    server = Server(
        settings,
        Repos(settings.repositories, settings.jobs),
        history,
        Operations(history),
        auth.Sessions(settings.secret, settings.state_dir / auth.SESSIONS_FILE),
        _templates(),
    )

    def failure(status: int) -> Any:
        async def handler(request: Request, exc: Exception) -> Response:
            return server.render(request, "error.html", {"message": str(exc)}, status)

        return handler

    app = Starlette(
        routes=[
            *pages.routes(server),
            *actions.routes(server),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={
            UsageError: failure(400),
            NotFoundError: failure(404),
            Busy: failure(409),
            CairnError: failure(500),
        },
    )
    app.state.server = server
    app.add_middleware(SessionGate, sessions=server.sessions)
    return app
