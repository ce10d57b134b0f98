"""What changes something (POST, each with the session's CSRF token): log out, run a job,
apply a job's retention, prune, check, restore, cancel; and the operation's page with its live
progress (server-sent events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from cairn.app.browse import safe_path
from cairn.core.errors import NotFoundError
from cairn.web import auth, work
from cairn.web.operations import RUNNING, Operation, Outcome

if TYPE_CHECKING:
    from cairn.web.app import Server

Form = ImmutableMultiDict[str, str]
POLL = 0.2  # seconds between looks at a running operation's state, for its event stream
Action = Callable[[Request, Form], Awaitable[Response]]


def routes(server: Server) -> list[Route]:
    def action(handler: Action) -> Callable[[Request], Awaitable[Response]]:
        """A POST endpoint: the form read, the CSRF token checked first."""

        async def endpoint(request: Request) -> Response:
            session = getattr(request.state, "session", None)
            fields = await auth.form(request)
            if session is None or not auth.csrf_ok(session, request, fields):
                return PlainTextResponse("missing or wrong CSRF token\n", status_code=403)
            return await handler(request, fields)

        return endpoint

    def started(op: Operation) -> Response:
        return RedirectResponse(f"/ops/{op.id}", status_code=303)

    async def logout(request: Request, fields: Form) -> Response:
        server.sessions.drop(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/")
        return response

    async def run_job(request: Request, fields: Form) -> Response:
        job = server.repos.job(request.path_params["job"])
        op = server.operations.start(
            job.repository.name, "job", f"job {job.name}", lambda ev: work.run_job(job, ev),
            job=job.name,
        )  # fmt: skip
        return started(op)

    async def retention(request: Request, fields: Form) -> Response:
        job = server.repos.job(request.path_params["job"])
        b = server.repos.browser(job.repository.name)
        op = server.operations.start(
            job.repository.name, "forget", f"retention of job {job.name}",
            lambda ev: work.run_retention(b, job, ev),
        )  # fmt: skip
        return started(op)

    def on_repository(request: Request, kind: str, run: Callable[..., Outcome]) -> Response:
        """Starts ``kind`` (``run(browser, events)``) on the repository of the URL."""
        name = request.path_params["repo"]
        b = server.repos.browser(name)
        op = server.operations.start(name, kind, f"{kind} {name}", lambda ev: run(b, ev))
        return started(op)

    async def prune(request: Request, fields: Form) -> Response:
        return on_repository(request, "prune", work.run_prune)

    async def check(request: Request, fields: Form) -> Response:
        return on_repository(request, "check", work.run_check)

    async def restore(request: Request, fields: Form) -> Response:
        name, ref = request.path_params["repo"], request.path_params["snap"]
        path = safe_path(fields.get("path", ""))
        picked = tuple(work.entry_name(n) for n in fields.getlist("pick"))
        target = work.allowed_target(fields.get("target", ""), server.settings.restore_roots)
        b = server.repos.browser(name)
        snap = b.snapshot(ref)
        what = f"{len(picked)} of /{path}" if picked else f"/{path}"
        title = f"restore {snap.id[:8]}:{what} to {target}"
        op = server.operations.start(
            name,
            "restore",
            title,
            lambda ev: work.run_restore(b, snap.id, path, target, ev, picked),
        )
        return started(op)

    async def cancel(request: Request, fields: Form) -> Response:
        op_id = request.path_params["op"]
        if server.operations.get(op_id) is None:
            raise NotFoundError("no such operation")
        server.operations.cancel(op_id)
        return RedirectResponse(f"/ops/{op_id}", status_code=303)

    async def operation(request: Request) -> Response:
        op_id = request.path_params["op"]
        state = server.operations.state(op_id)
        if state is None:
            run = server.history.get(op_id)
            if run is None:
                raise NotFoundError("no such operation")
            return RedirectResponse(f"/history/{op_id}", status_code=303)
        return server.render(request, "operation.html", {"op": state})

    async def events(request: Request) -> Response:
        op_id = request.path_params["op"]
        if server.operations.state(op_id) is None:
            raise NotFoundError("no such operation")

        async def stream() -> AsyncIterator[str]:
            sent = -1
            while True:
                state = server.operations.state(op_id)
                assert state is not None
                if state["version"] != sent:
                    sent = state["version"]
                    yield f"data: {json.dumps(state)}\n\n"
                if state["outcome"] != RUNNING:
                    return
                await asyncio.sleep(POLL)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    return [
        Route("/logout", action(logout), methods=["POST"]),
        Route("/jobs/{job}/run", action(run_job), methods=["POST"]),
        Route("/jobs/{job}/retention", action(retention), methods=["POST"]),
        Route("/r/{repo}/prune", action(prune), methods=["POST"]),
        Route("/r/{repo}/check", action(check), methods=["POST"]),
        Route("/r/{repo}/s/{snap}/restore", action(restore), methods=["POST"]),
        Route("/ops/{op:int}/cancel", action(cancel), methods=["POST"]),
        Route("/ops/{op:int}", operation),
        Route("/ops/{op:int}/events", events),
    ]
