"""The pages (GET): overview, snapshots, a snapshot's directories, search, diff, downloads,
history, cost. They read through ``cairn.app`` only; the repository's work runs on Starlette's
thread pool, never on the event loop."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cairn.app import browse
from cairn.app.cost import CostRequest, storage_months
from cairn.app.cost import report as cost_report
from cairn.app.cost import storage as cost_storage
from cairn.app.diff import diff
from cairn.app.events import NullEvents
from cairn.app.history import Run
from cairn.app.snapshots import snapshot_filter
from cairn.config.schema import JobConfig
from cairn.core import clock
from cairn.core.errors import CairnError, NotFoundError, UsageError
from cairn.core.units import format_bytes
from cairn.ui.costreport import report_lines
from cairn.web import auth
from cairn.web.streams import StreamBridge

if TYPE_CHECKING:
    from cairn.web.app import Server

ORIGINS = {"web": "here", "command": "cairn run", "timer": "a timer"}  # where a run began
CHART_MONTHS = 12  # months the cost page's chart of storage shows
DIFF_LIMIT = 2000  # changes listed on the diff page
PAGE = 1000  # entries of a directory on one page (a browser slows down past a few thousand rows)
SNAPSHOT_TYPES = {"raw": "application/octet-stream", "tar": "application/x-tar",
                  "tar.gz": "application/gzip", "zip": "application/zip"}  # fmt: skip


@dataclass
class JobView:
    job: JobConfig
    last: Run | None
    last_snapshot: browse.Snapshot | None
    next_run: Any


@dataclass
class RepoView:
    name: str
    url: str
    error: str | None = None
    snapshots: int = 0
    latest: browse.Snapshot | None = None
    size: int | None = None
    month: float | None = None  # storage per month, where the repository is priced
    last_check: Run | None = None
    jobs: list[JobView] | None = None


def routes(server: Server) -> list[Route]:
    async def login_page(request: Request) -> Response:
        token = request.query_params.get("token")
        if token is not None:
            return _login(server, request, token)
        return server.render(request, "login.html", {"failed": False})

    async def login(request: Request) -> Response:
        fields = await auth.form(request)
        return _login(server, request, fields.get("secret", ""))

    async def overview(request: Request) -> Response:
        views = await run_in_threadpool(_overview, server)
        running = server.operations.running()
        return server.render(request, "overview.html", {"repos": views, "running": running})

    async def snapshots(request: Request) -> Response:
        name = request.path_params["repo"]
        q = request.query_params
        wanted = {k: q.get(k, "").strip() for k in ("host", "tag", "path")}
        flt = snapshot_filter(
            hosts=[wanted["host"]] if wanted["host"] else (),
            tags=[wanted["tag"]] if wanted["tag"] else (),
            paths=[wanted["path"]] if wanted["path"] else (),
        )
        snaps = await run_in_threadpool(server.repos.browser(name).snapshots, flt)
        snaps.reverse()  # newest first
        return server.render(
            request,
            "snapshots.html",
            {"repo": name, "snaps": snaps, "wanted": wanted, "timeline": _timeline(snaps)},
        )

    async def directory(request: Request) -> Response:
        name, ref = request.path_params["repo"], request.path_params["snap"]
        path = browse.safe_path(request.query_params.get("path", ""))
        b = server.repos.browser(name)
        listing = await run_in_threadpool(b.directory, ref, path)
        entries = sorted(listing.entries, key=lambda n: (n.type != "dir", n.name))
        pages = max(1, -(-len(entries) // PAGE))
        try:
            page = min(max(1, int(request.query_params.get("page", "1"))), pages)
        except ValueError:
            raise UsageError("page: not a number") from None
        return server.render(
            request,
            "browse.html",
            {
                "repo": name,
                "snap": listing.snapshot,
                "listing": listing,
                "entries": entries[(page - 1) * PAGE : page * PAGE],
                "count": len(entries),
                "page": page,
                "pages": pages,
                "first": (page - 1) * PAGE + 1,
                "crumbs": _crumbs(listing.path),
                "roots": server.settings.restore_roots,
                "join": lambda n: _join(listing.path, n),
            },
        )

    async def search(request: Request) -> Response:
        name, ref = request.path_params["repo"], request.path_params["snap"]
        pattern = request.query_params.get("q", "").strip()
        if "\0" in pattern:
            raise UsageError("a pattern must not contain NUL")
        b = server.repos.browser(name)
        snap, hits = await run_in_threadpool(b.search, ref, pattern, NullEvents())
        return server.render(
            request,
            "search.html",
            {
                "repo": name,
                "snap": snap,
                "pattern": pattern,
                "hits": hits,
                "limit": browse.SEARCH_LIMIT,
            },
        )

    async def download(request: Request) -> Response:
        name, ref = request.path_params["repo"], request.path_params["snap"]
        path = browse.safe_path(request.query_params.get("path", ""))
        fmt = request.query_params.get("format", "raw")
        b = server.repos.browser(name)
        bridge = StreamBridge(lambda output: b.download(ref, path, fmt, output, NullEvents()))
        await run_in_threadpool(bridge.start)
        base = os.path.basename(path) or f"snapshot-{ref[:8]}"
        filename = base if fmt == "raw" else f"{base}.{fmt}"
        headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"}
        if fmt == "raw":
            headers["Content-Length"] = str(bridge.info.size)
        return StreamingResponse(bridge.chunks(), media_type=SNAPSHOT_TYPES[fmt], headers=headers)

    async def difference(request: Request) -> Response:
        name = request.path_params["repo"]
        old, new = request.query_params.get("old", ""), request.query_params.get("new", "")
        b = server.repos.browser(name)

        def compare() -> dict[str, Any]:
            d = diff(b.session, old, new, NullEvents())
            changes = []
            for change in d.changes():
                if len(changes) < DIFF_LIMIT:
                    changes.append(change)
            return {"d": d, "changes": changes, "added": d.bytes_added(),
                    "removed": d.bytes_removed()}  # fmt: skip

        if not old or not new:
            snaps = await run_in_threadpool(b.snapshots)
            return server.render(request, "diff_pick.html", {"repo": name, "snaps": snaps[::-1]})
        result = await run_in_threadpool(compare)
        return server.render(request, "diff.html", {"repo": name, "limit": DIFF_LIMIT, **result})

    async def history(request: Request) -> Response:
        runs = await run_in_threadpool(server.history.recent)
        return server.render(request, "history.html", {"runs": runs, "origins": ORIGINS})

    async def history_entry(request: Request) -> Response:
        run = await run_in_threadpool(server.history.get, int(request.path_params["run"]))
        if run is None:
            raise NotFoundError("no such run")
        return server.render(request, "run.html", {"run": run, "origins": ORIGINS})

    async def cost(request: Request) -> Response:
        name = request.path_params["repo"]
        b = server.repos.browser(name)
        provider = request.query_params.get("provider") or None
        doc, chosen, why = await run_in_threadpool(
            cost_report, b.session, CostRequest(provider=provider)
        )
        months = await run_in_threadpool(storage_months, b.session, CHART_MONTHS)
        lines = report_lines(doc, chosen, why) if chosen is not None else []
        return server.render(
            request,
            "cost.html",
            {
                "repo": name,
                "doc": doc,
                "why": why,
                "provider": provider,
                "lines": lines,
                "chart": storage_chart(months),
            },
        )

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/", overview),
        Route("/r/{repo}/snapshots", snapshots),
        Route("/r/{repo}/s/{snap}/browse", directory),
        Route("/r/{repo}/s/{snap}/search", search),
        Route("/r/{repo}/s/{snap}/download", download),
        Route("/r/{repo}/diff", difference),
        Route("/r/{repo}/cost", cost),
        Route("/history", history),
        Route("/history/{run:int}", history_entry),
    ]


def _login(server: Server, request: Request, secret: str) -> Response:
    if not secret or not server.sessions.check_secret(secret):
        return server.render(request, "login.html", {"failed": True}, 401)
    session = server.sessions.create()
    response = Response(status_code=303, headers={"Location": "/"})
    auth.set_cookie(response, session, server.settings.secure_cookie)
    return response


def _overview(server: Server) -> list[RepoView]:
    views = []
    now = clock.now()
    for name in server.repos.names():
        view = RepoView(name, server.repos.specs[name].resolved_url())
        view.last_check = server.history.last_of_kind(name, "check")
        jobs = server.repos.jobs_of(name)
        try:
            b = server.repos.browser(name)
            snaps = b.snapshots()
            view.snapshots, view.latest = len(snaps), (snaps[-1] if snaps else None)
            stored = _storage(server, name, b, snaps)
            view.size, view.month = stored.bytes, stored.month
        except CairnError as e:
            view.error = str(e)
            snaps = []
        view.jobs = []
        for job in jobs:
            mine = [s for s in snaps if job.tag in s.tags]
            next_run = job.schedule.next_runs(now)[0] if job.schedule else None
            view.jobs.append(
                JobView(
                    job, server.history.last_of_job(job.name), mine[-1] if mine else None, next_run
                )
            )
        views.append(view)
    return views


def _storage(server: Server, name: str, b: browse.Browser, snaps: list[browse.Snapshot]) -> Any:
    """The repository's size and storage cost: listed again only when its snapshots or the
    operations run from here changed (a listing of a bucket is requests, billed, and time)."""
    last = server.history.recent(1)
    key = (frozenset(s.id for s in snaps), last[0].finished if last else None)
    cached = server.storage_cache.get(name)
    if cached is not None and cached[0] == key:
        return cached[1]
    stored = cost_storage(b.session)
    server.storage_cache[name] = (key, stored)
    return stored


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each directory from the root down to ``path``."""
    crumbs, parts = [("/", "")], []
    for part in path.split("/") if path else []:
        parts.append(part)
        crumbs.append((part, "/".join(parts)))
    return crumbs


def _join(path: str, name: bytes) -> str:
    child = os.fsdecode(name)
    return f"{path}/{child}" if path else child


def _timeline(snaps: list[browse.Snapshot]) -> str:
    """An SVG polyline's points: each snapshot's size, oldest left (100 x 30 view box)."""
    if len(snaps) < 2:
        return ""
    sizes = [s.summary.bytes_total for s in reversed(snaps)]
    top = max(sizes) or 1
    step = 100 / (len(sizes) - 1)
    return " ".join(f"{i * step:.2f},{30 - 28 * v / top:.2f}" for i, v in enumerate(sizes))


@dataclass(frozen=True)
class Bar:
    month: str  # YYYY-MM
    size: str  # the bytes stored, for people
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    top: str  # the bytes of the highest bar, for people
    width: int
    height: int
    base: float  # the bars' baseline


def storage_chart(months: list[tuple[str, int]]) -> Chart | None:
    """A bar chart of what the repository stored at the end of each month, for an inline SVG
    (coordinates in its view box); None when nothing was recorded."""
    if not months:
        return None
    width, height, top_margin, base = 640, 220, 24.0, 190.0
    highest = max(n for _, n in months) or 1
    slot = width / len(months)
    bars = []
    for i, (month, n) in enumerate(months):
        h = (base - top_margin) * n / highest
        w = min(slot * 0.7, 56.0)
        bars.append(Bar(month, format_bytes(n), i * slot + (slot - w) / 2, base - h, w, h))
    return Chart(bars, format_bytes(highest), width, height, base)
