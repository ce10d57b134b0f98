"""cairn serve over HTTP (Starlette's TestClient): the session gate in front of every endpoint,
the login, CSRF, paths that must be refused, restores only below the allowed roots, one
operation per repository, downloads, and the history kept across restarts."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from cairn.cli.main import main as cli_main
from cairn.cli.serve import is_loopback, parse_listen
from cairn.config.load import load_config
from cairn.core import clock
from cairn.core.errors import ConfigError, UsageError
from cairn.web.app import create_app
from cairn.web.settings import login_token
from tests import treecmp
from tests.conftest import CAIRN
from tests.servefix import SECRET, Served, csrf_of, serve_setup

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def served(tmp_path: Path) -> Served:
    return serve_setup(tmp_path)


@pytest.fixture
def client(served: Served) -> Iterator[TestClient]:
    with TestClient(served.app(), follow_redirects=False) as c:
        yield c


def log_in(c: TestClient) -> str:
    """Logs ``c`` in; the CSRF token of its session."""
    r = c.post("/login", data={"secret": SECRET})
    assert r.status_code == 303
    return csrf_of(c.get("/").text)


def rel(path: Path) -> str:
    """A path of the source tree as the snapshot has it, relative to its root."""
    return str(path)[1:]


def routes(c: TestClient) -> list[tuple[str, str]]:
    """(method, path with sample parameters) of every endpoint but the static files."""
    out = []
    for route in c.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        path = route.path.replace("{repo}", "main").replace("{snap}", "latest")
        path = path.replace("{job}", "docs").replace("{op:int}", "1").replace("{run:int}", "1")
        for method in route.methods or ():
            if method != "HEAD":
                out.append((method, path))
    return out


# ---------------------------------------------------------------------- access
def test_every_endpoint_but_login_needs_a_session(client: TestClient) -> None:
    seen = routes(client)
    assert len(seen) >= 18
    for method, path in seen:
        if path == "/login":
            continue
        r = client.request(method, path)
        if method == "GET":
            assert (r.status_code, r.headers.get("location")) == (303, "/login"), path
        else:
            assert r.status_code == 401, (method, path)
    # the event stream is not a page: it is refused, not redirected
    r = client.get("/ops/1/events", headers={"accept": "text/event-stream"})
    assert r.status_code == 401
    assert client.get("/static/cairn.css").status_code == 200
    assert client.get("/login").status_code == 200


def test_wrong_token_is_refused_and_the_right_one_sets_a_strict_cookie(client: TestClient) -> None:
    r = client.post("/login", data={"secret": SECRET + "x"})
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert client.get("/login?token=nope").status_code == 401
    assert client.post("/login", data={}).status_code == 401
    assert client.get("/").status_code == 303
    r = client.get(f"/login?token={SECRET}")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/").status_code == 200


def test_a_forged_cookie_is_no_session(client: TestClient) -> None:
    client.cookies.set("cairn_session", "made-up")
    assert client.get("/").status_code == 303


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = log_in(client)
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/").status_code == 303


def session_cookie(c: TestClient) -> str:
    return [k.value for k in c.cookies.jar if k.name == "cairn_session" and k.value][-1]  # type: ignore[misc]


def use_cookie(c: TestClient, value: str) -> None:
    c.cookies.clear()
    c.cookies.set("cairn_session", value)


def test_a_session_survives_a_restart_and_ends_at_logout_or_expiry(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(served.app(), follow_redirects=False) as c:
        csrf = log_in(c)
        cookie = session_cookie(c)
    with TestClient(served.app(), follow_redirects=False) as c:  # a new server, the same state
        assert c.get("/").status_code == 303  # no cookie, no session
        use_cookie(c, cookie)
        assert c.get("/").status_code == 200
        assert csrf_of(c.get("/").text) == csrf  # the same session, its CSRF token kept
        use_cookie(c, cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + "x")
        assert c.get("/").status_code == 303  # forged
        use_cookie(c, cookie)
        assert c.post("/logout", data={"csrf": csrf}).status_code == 303
    with TestClient(served.app(), follow_redirects=False) as c:  # logged out stays logged out
        use_cookie(c, cookie)
        assert c.get("/").status_code == 303
        log_in(c)
        cookie = session_cookie(c)
    db = served.settings.state_dir / "sessions.sqlite"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert cookie.encode() not in db.read_bytes()  # only its hash is kept
    start = clock.now()
    with TestClient(served.app(), follow_redirects=False) as c:
        use_cookie(c, cookie)
        monkeypatch.setattr(clock, "now", lambda: start + timedelta(hours=23))
        assert c.get("/").status_code == 200  # used within a day: still there
        monkeypatch.setattr(clock, "now", lambda: start + timedelta(hours=46))
        assert c.get("/").status_code == 200
        monkeypatch.setattr(clock, "now", lambda: start + timedelta(hours=71))
        assert c.get("/").status_code == 303  # a day unused: expired
        monkeypatch.setattr(clock, "now", lambda: start)
        c.cookies.clear()
        log_in(c)
        for hours in range(20, 7 * 24, 20):  # used every day, it still ends a week on
            monkeypatch.setattr(clock, "now", lambda h=hours: start + timedelta(hours=h))
            assert c.get("/").status_code == 200, hours
        monkeypatch.setattr(clock, "now", lambda: start + timedelta(days=7, minutes=1))
        assert c.get("/").status_code == 303


def test_a_new_login_secret_ends_the_sessions(served: Served) -> None:
    with TestClient(served.app(), follow_redirects=False) as c:
        log_in(c)
        cookie = session_cookie(c)
    settings = replace(served.settings, secret="another-secret")
    with TestClient(create_app(settings), follow_redirects=False) as c:
        use_cookie(c, cookie)
        assert c.get("/").status_code == 303


def test_every_post_needs_the_csrf_token(client: TestClient, served: Served) -> None:
    csrf = log_in(client)
    posts = [path for method, path in routes(client) if method == "POST" and path != "/login"]
    assert len(posts) >= 7
    for path in posts:
        assert client.post(path, data={}).status_code == 403, path
        assert client.post(path, data={"csrf": csrf + "x"}).status_code == 403, path
        assert client.post(path, headers={"x-csrf-token": "nope"}).status_code == 403, path
    # nothing ran, nothing was restored, the session is still there
    assert client.get("/history").text.count('href="/history/') == 0
    assert list(served.restore_root.iterdir()) == []
    assert client.get("/").status_code == 200


def test_the_repository_password_never_reaches_the_browser(
    client: TestClient, served: Served
) -> None:
    log_in(client)
    password = os.environ["CAIRN_PASSWORD"]
    for path in ("/", "/r/main/snapshots", "/r/main/s/latest/browse", "/history", "/r/main/cost"):
        assert password not in client.get(path).text, path


# ---------------------------------------------------------------------- paths
@pytest.mark.parametrize("bad", ["../etc", "a/../../b", "/etc/passwd", "a\0b", "%2e%2e/x"])
def test_bad_paths_in_browse_and_download_are_refused(client: TestClient, bad: str) -> None:
    log_in(client)
    query = bad if bad.startswith("%") else bad.replace("\0", "%00")
    for url in (
        f"/r/main/s/latest/browse?path={query}",
        f"/r/main/s/latest/download?path={query}",
        f"/r/main/s/latest/download?path={query}&format=zip",
    ):
        r = client.get(url)
        assert r.status_code == 400, url
        assert "path" in r.text


@pytest.mark.parametrize("bad", ["../etc", "/etc", "a\0b"])
def test_bad_paths_in_restore_are_refused(client: TestClient, served: Served, bad: str) -> None:
    csrf = log_in(client)
    r = client.post(
        "/r/main/s/latest/restore",
        data={"csrf": csrf, "path": bad, "target": str(served.restore_root / "t")},
    )
    assert r.status_code == 400
    assert list(served.restore_root.iterdir()) == []


@pytest.mark.parametrize(
    "target", ["{root}/../escape", "relative/dir", "/tmp", "{root}/x\0y", "{root}/link/inside", ""]
)
def test_restores_outside_the_allowed_roots_are_refused(
    client: TestClient, served: Served, tmp_path: Path, target: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, served.restore_root / "link")
    csrf = log_in(client)
    r = client.post(
        "/r/main/s/latest/restore",
        data={
            "csrf": csrf,
            "path": rel(served.src),
            "target": target.format(root=served.restore_root),
        },
    )
    assert r.status_code == 400
    assert list(outside.iterdir()) == []
    assert list(served.restore_root.iterdir()) == [served.restore_root / "link"]


def test_unknown_snapshot_repository_and_format(client: TestClient) -> None:
    log_in(client)
    assert client.get("/r/main/s/ffffffff/browse").status_code == 400
    assert client.get("/r/main/s/xyz!/browse").status_code == 400
    assert client.get("/r/other/snapshots").status_code == 404
    assert client.get("/r/main/s/latest/download?format=rar").status_code == 400
    assert client.get("/r/main/s/latest/download?path=&format=raw").status_code == 400
    assert client.get("/history/999").status_code == 404
    assert client.get("/ops/999").status_code == 404


# ---------------------------------------------------------------------- pages
def test_overview_shows_the_jobs_last_run_and_next_run(client: TestClient) -> None:
    log_in(client)
    page = client.get("/").text
    assert 'id="job-docs"' in page and "not scheduled" not in page
    assert "Snapshots</dt><dd>2</dd>" in page
    assert "a month" not in page  # a local directory: not priced


def test_overview_prices_the_storage_where_a_provider_is_named(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_PROVIDER", "aws")
    log_in(client)
    assert "a month</a>" in client.get("/").text


def test_snapshots_filter_by_host_tag_and_path(client: TestClient, served: Served) -> None:
    log_in(client)
    rows = lambda q: client.get(f"/r/main/snapshots?{q}").text.count('class="snap"')  # noqa: E731
    assert rows("") == 2
    assert rows("tag=job:docs") == 2
    assert rows("tag=nope") == 0
    assert rows("host=no-such-host") == 0
    assert rows(f"path={served.src}") == 2
    assert rows("path=/elsewhere") == 0


def test_browse_lists_a_directory_with_modes_and_sizes(client: TestClient, served: Served) -> None:
    log_in(client)
    page = client.get(f"/r/main/s/latest/browse?path={rel(served.src / 'docs' / 'deep')}").text
    assert "notes.md" in page and "blob.bin" in page
    assert "-rw-r-----" in page  # notes.md's mode
    assert "292.97 KiB" in page  # blob.bin


def test_a_large_directory_is_shown_a_page_at_a_time(client: TestClient, served: Served) -> None:
    wide = served.src / "wide"
    wide.mkdir()
    for i in range(1500):
        (wide / f"e{i:04d}").touch()
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    log_in(client)
    url = f"/r/main/s/latest/browse?path={rel(wide)}"
    first = client.get(url).text
    assert first.count('class="file"') == 1000 and "e0999" in first and "e1000" not in first
    assert "entries 1–1000 of 1500" in first
    last = client.get(url + "&page=2").text
    assert last.count('class="file"') == 500 and "e1499" in last and "e0999" not in last
    assert client.get(url + "&page=99").text.count('class="file"') == 500
    assert client.get(url + "&page=x").status_code == 400


def test_a_backup_made_while_serving_is_browsable(client: TestClient, served: Served) -> None:
    """The index the server loaded before the backup lacks the new snapshot's trees: it is
    loaded again for it."""
    log_in(client)
    docs = served.src / "docs"
    assert "later.txt" not in client.get(f"/r/main/s/latest/browse?path={rel(docs)}").text
    (docs / "later.txt").write_text("written while the server ran\n")
    (docs / "newdir").mkdir()
    (docs / "newdir" / "inner.txt").write_text("in a new tree\n")
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    assert "later.txt" in client.get(f"/r/main/s/latest/browse?path={rel(docs)}").text
    page = client.get(f"/r/main/s/latest/browse?path={rel(docs / 'newdir')}").text
    assert "inner.txt" in page
    r = client.get(f"/r/main/s/latest/download?path={rel(docs / 'newdir' / 'inner.txt')}")
    assert r.content == b"in a new tree\n"


def test_search_finds_by_name(client: TestClient) -> None:
    log_in(client)
    page = client.get("/r/main/s/latest/search?q=notes.md").text
    assert page.count('class="file"') == 1 and "deep/notes.md" in page
    assert client.get("/r/main/s/latest/search?q=").status_code == 400


def test_downloads_stream_the_files(client: TestClient, served: Served, tmp_path: Path) -> None:
    log_in(client)
    blob = served.src / "docs" / "deep" / "blob.bin"
    r = client.get(f"/r/main/s/latest/download?path={rel(blob)}")
    assert r.status_code == 200 and r.content == blob.read_bytes()
    assert r.headers["content-length"] == str(blob.stat().st_size)
    assert "blob.bin" in r.headers["content-disposition"]
    docs = served.src / "docs"
    r = client.get(f"/r/main/s/latest/download?path={rel(docs)}&format=zip")
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        z.extractall(tmp_path / "unzipped")
    got = tmp_path / "unzipped" / rel(docs)
    for f in ("report.txt", "added.txt", "deep/notes.md", "deep/blob.bin"):
        assert (got / f).read_bytes() == (docs / f).read_bytes(), f
    r = client.get(f"/r/main/s/latest/download?path={rel(docs)}&format=tar.gz")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(r.content))) as t:
        t.extractall(tmp_path / "untarred", filter="fully_trusted")
    got = tmp_path / "untarred" / rel(docs)
    for f in ("report.txt", "added.txt", "deep/notes.md", "deep/blob.bin"):
        assert (got / f).read_bytes() == (docs / f).read_bytes(), f
        assert (got / f).stat().st_mode == (docs / f).stat().st_mode, f


def test_archives_deflate_what_compresses_and_store_the_rest(
    client: TestClient, served: Served, tmp_path: Path
) -> None:
    docs = served.src / "docs"
    (docs / "big.txt").write_bytes(b"".join(b"line %d of a log\n" % i for i in range(300_000)))
    (docs / "noise.bin").write_bytes(os.urandom(3 << 20))
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    log_in(client)
    r = client.get(f"/r/main/s/latest/download?path={rel(docs)}&format=zip")
    (tmp_path / "docs.zip").write_bytes(r.content)
    with zipfile.ZipFile(tmp_path / "docs.zip") as z:
        assert z.testzip() is None
        methods = {i.filename.rsplit("/", 1)[1]: i.compress_type for i in z.infolist()}
        assert methods["noise.bin"] == methods["blob.bin"] == zipfile.ZIP_STORED
        assert methods["big.txt"] == methods["report.txt"] == zipfile.ZIP_DEFLATED
        for f in ("big.txt", "noise.bin", "report.txt"):
            assert z.read(f"{rel(docs)}/{f}") == (docs / f).read_bytes()
    r = client.get(f"/r/main/s/latest/download?path={rel(docs)}&format=tar.gz")
    (tmp_path / "docs.tar.gz").write_bytes(r.content)
    noise, text = (docs / "noise.bin").stat().st_size, (docs / "big.txt").stat().st_size
    # the noise stored (not grown by deflate's failed tries), the text deflated
    assert noise < len(r.content) < noise + text // 2
    with open(tmp_path / "docs.tar.gz", "rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as t:
        got = {m.name: t.extractfile(m).read() for m in t if m.isfile()}  # type: ignore[union-attr]
    for f in ("big.txt", "noise.bin", "report.txt"):
        assert got[f"{rel(docs)}/{f}"] == (docs / f).read_bytes()
    for tool, args in (("unzip", ["-t", "docs.zip"]), ("tar", ["tzf", "docs.tar.gz"])):
        if shutil.which(tool):
            done = subprocess.run([tool, *args], cwd=tmp_path, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            assert "noise.bin" in done.stdout


def test_diff_shows_what_the_second_backup_added(client: TestClient) -> None:
    log_in(client)
    picker = client.get("/r/main/diff").text
    ids = [line.split('"')[1] for line in picker.split("<option value=")[1:3]]
    newest, older = ids
    page = client.get(f"/r/main/diff?old={older}&new={newest}").text
    assert "docs/added.txt" in page and "+1 −0" in page


def test_cost_page(client: TestClient) -> None:
    log_in(client)
    r = client.get("/r/main/cost")
    assert r.status_code == 200 and 'id="cost"' in r.text


def chart_bars(page: str) -> list[tuple[str, float]]:
    """(month, bar height) of each bar of the cost page's chart of storage."""
    chart = page.split('<svg id="storage-chart"')[1].split("</svg>")[0]
    months = re.findall(r"<title>(\d{4}-\d\d): [^<]+</title>", chart)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', chart)]
    assert len(months) == len(heights)
    return list(zip(months, heights, strict=True))


def test_cost_page_charts_storage_by_month(
    client: TestClient, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_in(client)
    now = clock.now()
    bars = chart_bars(client.get("/r/main/cost").text)
    assert [m for m, _ in bars] == [now.strftime("%Y-%m")] and bars[0][1] > 0
    # a backup two months on: the months between keep what was stored, the last has more
    later = now + timedelta(days=62)
    monkeypatch.setattr(clock, "now", lambda: later)
    (served.src / "docs" / "more.bin").write_bytes(os.urandom(300_000))
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    log_in(client)  # two months on: the session has expired
    bars = chart_bars(client.get("/r/main/cost").text)
    assert bars[0][0] == now.strftime("%Y-%m") and bars[-1][0] == later.strftime("%Y-%m")
    assert 3 <= len(bars) <= 4
    assert bars[-1][1] > bars[0][1] * 1.5
    assert all(h == bars[0][1] for _, h in bars[:-1])


# ---------------------------------------------------------------------- operations
def gated_job(served: Served) -> Path:
    """A second job whose before hook waits for a file (the gate) to appear; a served app
    with it. Returns the gate."""
    gate = served.root / "gate"
    with open(served.config, "a") as f:
        f.write(
            f"""
[jobs.slow]
repository = "main"
paths = ["{served.src}"]
hooks.before = ["while [ ! -e {gate} ]; do sleep 0.02; done"]
"""
        )
    cfg = load_config(str(served.config))
    object.__setattr__(served.settings, "jobs", dict(cfg.jobs))
    return gate


def follow(c: TestClient, op: int) -> dict[str, object]:
    """The operation's last state, following its event stream to the end."""
    last: dict[str, object] = {}
    with c.stream("GET", f"/ops/{op}/events") as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                last = json.loads(line[6:])
    return last


def test_a_second_operation_on_a_repository_is_refused(served: Served) -> None:
    gate = gated_job(served)
    with TestClient(served.app(), follow_redirects=False) as c:
        csrf = log_in(c)
        r = c.post("/jobs/slow/run", data={"csrf": csrf})
        assert r.status_code == 303
        op = int(r.headers["location"].rsplit("/", 1)[1])
        for path in ("/jobs/docs/run", "/r/main/prune", "/r/main/check", "/jobs/slow/run"):
            r = c.post(path, data={"csrf": csrf})
            assert r.status_code == 409, path
            assert "busy" in r.text
        assert "job slow" in c.get("/").text  # listed as running; the page still answers
        gate.touch()
        assert follow(c, op)["outcome"] == "ok"
        r = c.post("/r/main/check", data={"csrf": csrf})
        assert r.status_code == 303  # free again
        check = int(r.headers["location"].rsplit("/", 1)[1])
        state = follow(c, check)
        assert state["outcome"] == "ok", state


def test_cancel_stops_a_running_job(served: Served) -> None:
    gate = gated_job(served)
    with TestClient(served.app(), follow_redirects=False) as c:
        csrf = log_in(c)
        op = int(
            c.post("/jobs/slow/run", data={"csrf": csrf}).headers["location"].rsplit("/", 1)[1]
        )
        assert c.post(f"/ops/{op}/cancel", data={"csrf": csrf}).status_code == 303
        gate.touch()
        assert follow(c, op)["outcome"] == "cancelled"
        assert "cancelled" in c.get(f"/history/{op}").text


def test_restore_writes_below_the_root_and_history_survives_a_restart(
    served: Served, tmp_path: Path
) -> None:
    docs = served.src / "docs"
    before = treecmp.describe(docs, atime=False)
    target = served.restore_root / "docs-back"
    with TestClient(served.app(), follow_redirects=False) as c:
        csrf = log_in(c)
        r = c.post(
            "/r/main/s/latest/restore",
            data={"csrf": csrf, "path": rel(docs), "target": str(target)},
        )
        assert r.status_code == 303
        op = int(r.headers["location"].rsplit("/", 1)[1])
        state = follow(c, op)
        assert state["outcome"] == "ok", state
        assert "restored 4 files" in str(state["summary"])
    assert treecmp.diff(before, treecmp.describe(target, atime=False)) == []
    with TestClient(served.app(), follow_redirects=False) as c:  # a new server, the same state
        log_in(c)
        page = c.get("/history").text
        assert "restore" in page and "docs-back" in page
        assert c.get(f"/ops/{op}").headers["location"] == f"/history/{op}"


def test_jobs_cairn_run_ran_are_in_the_history(
    client: TestClient, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_STATE_DIR", str(served.settings.state_dir))
    log_in(client)
    assert client.get("/history").text.count('href="/history/') == 0
    (served.src / "docs" / "new.txt").write_text("backed up by cairn run\n")
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    monkeypatch.setenv("INVOCATION_ID", "0123abcd")  # as systemd runs a timer's service
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    page = client.get("/history").text
    ids = re.findall(r'href="/history/(\d+)"', page)
    assert len(ids) == 2 and page.count("<td>job docs</td>") == 2
    rows = page.split("<tbody>")[1].split("</tr>")
    assert '"origin">a timer<' in rows[0] and '"origin">cairn run<' in rows[1]
    entry = client.get(f"/history/{ids[1]}").text
    assert 'id="run-outcome">ok<' in entry and "snapshot" in entry and "1 new" in entry
    # the overview's last run of the job is the timer's
    assert f'href="/history/{ids[0]}"' in client.get("/").text
    history = served.settings.state_dir / "serve.sqlite"
    assert stat.S_IMODE(history.stat().st_mode) == 0o600


def test_a_run_whose_process_is_gone_is_interrupted(tmp_path: Path) -> None:
    from cairn.app.history import COMMAND, History

    history = History(tmp_path / "h.sqlite")
    mine = history.begin("main", "job", "job docs", "docs", 1.0, COMMAND)
    gone = history.begin("main", "job", "job docs", "docs", 2.0, COMMAND)
    dead = subprocess.Popen(["true"])
    dead.wait()
    with sqlite3.connect(tmp_path / "h.sqlite") as db:
        db.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead.pid, gone))
    outcomes = {r.id: r.outcome for r in history.recent()}
    assert outcomes == {mine: "running", gone: "interrupted"}


def test_a_history_from_before_origins_is_upgraded(tmp_path: Path) -> None:
    from cairn.app.history import SCHEMA, WEB, History

    with sqlite3.connect(tmp_path / "h.sqlite") as db:  # as servers wrote it before
        db.executescript(SCHEMA)
        db.execute(
            "INSERT INTO runs (repository, kind, title, started, outcome)"
            " VALUES ('main', 'check', 'check main', 1, 'running')"
        )
    os.chmod(tmp_path / "h.sqlite", 0o644)
    history = History(tmp_path / "h.sqlite", server=True)
    assert stat.S_IMODE((tmp_path / "h.sqlite").stat().st_mode) == 0o600  # made private
    (run,) = history.recent()
    assert (run.origin, run.outcome) == (WEB, "interrupted")
    assert History(tmp_path / "h.sqlite").recent() == [run]


def test_restore_only_the_entries_picked(served: Served) -> None:
    docs = served.src / "docs"
    (docs / "odd [*?] name.txt").write_text("wildcards are literal here\n")
    (docs / "odd x name.txt").write_text("not picked, though the pattern would match it\n")
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    target = served.restore_root / "picked"
    with TestClient(served.app(), follow_redirects=False) as c:
        csrf = log_in(c)
        page = c.get(f"/r/main/s/latest/browse?path={rel(docs)}").text
        assert 'name="pick" value="report.txt"' in page
        fields: dict[str, object] = {"csrf": csrf, "path": rel(docs), "target": str(target)}
        fields["pick"] = ["report.txt", "deep", "odd [*?] name.txt"]
        r = c.post("/r/main/s/latest/restore", data=fields)
        assert r.status_code == 303
        state = follow(c, int(r.headers["location"].rsplit("/", 1)[1]))
        assert state["outcome"] == "ok", state
        for bad in ("../x", "a/b", ".", ""):
            fields["pick"] = ["report.txt", bad]
            assert c.post("/r/main/s/latest/restore", data=fields).status_code == 400, bad
    assert sorted(p.name for p in target.iterdir()) == ["deep", "odd [*?] name.txt", "report.txt"]
    assert (
        treecmp.diff(
            treecmp.describe(docs / "deep", atime=False),
            treecmp.describe(target / "deep", atime=False),
        )
        == []
    )
    assert (target / "report.txt").read_bytes() == (docs / "report.txt").read_bytes()


# ---------------------------------------------------------------------- settings
def test_the_login_token_is_made_once_and_private(tmp_path: Path) -> None:
    token = login_token(tmp_path / "cfg")
    assert len(token) >= 30
    path = tmp_path / "cfg" / "serve-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert login_token(tmp_path / "cfg") == token
    path.chmod(0o644)
    with pytest.raises(UsageError, match="readable by others"):
        login_token(tmp_path / "cfg")


def test_listen_addresses(run_cli) -> None:  # type: ignore[no-untyped-def]
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9") == ("::1", 9)
    assert parse_listen("8080") == ("127.0.0.1", 8080)
    assert is_loopback("localhost") and is_loopback("::1") and not is_loopback("0.0.0.0")
    r = run_cli("serve", "--listen", "0.0.0.0:8731", "--repo", "/nonexistent")
    assert r.code != 0 and "--cert and --key, or --insecure-http" in r.err
    r = run_cli("serve", "--listen", "127.0.0.1:x")
    assert r.code != 0 and "not a number" in r.err


def test_cairn_serve_prints_a_login_link_that_logs_in(served: Served, tmp_path: Path) -> None:
    """The command as a user starts it: a token made in the configuration directory, the
    link printed, the link logging in, a SIGTERM stopping it; started again, the same
    session cookie is still logged in."""
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "XDG_STATE_HOME": str(tmp_path / "st"),
    }

    @contextmanager
    def serving() -> Iterator[tuple[str, int]]:
        proc = subprocess.Popen(
            [*CAIRN, "serve", "-c", str(served.config), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            m = re.fullmatch(r"cairn serve: http://127\.0\.0\.1:(\d+)/login\?token=\S+\n", line)
            assert m, line
            yield line, int(m.group(1))
        finally:
            proc.terminate()
            # uvicorn shuts down, then dies of the signal it caught, as a program without it
            assert proc.wait(timeout=30) in (0, -signal.SIGTERM)

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with serving() as (line, port):
        token = (tmp_path / "xdg" / "cairn" / "serve-token").read_text().strip()
        assert line.strip().endswith(token)
        with opener.open(line.split(" ", 2)[2].strip(), timeout=30) as page:
            assert page.url.endswith("/") and 'id="job-docs"' in page.read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/r/main/prune", data=b"", timeout=30)
        assert refused.value.code == 401
    assert (tmp_path / "st" / "cairn" / "serve.sqlite").exists()
    sessions = tmp_path / "st" / "cairn" / "sessions.sqlite"
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o600
    with serving() as (_, port):  # a new process: the cookie of the first is still a session
        with opener.open(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.url.endswith(f"{port}/") and 'id="job-docs"' in page.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.url.endswith("/login")  # without it: the login page


def test_restore_roots_must_be_absolute(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[serve]\nrestore-roots = ["relative"]\n')
    with pytest.raises(ConfigError, match="not an absolute path"):
        load_config(str(cfg))
    cfg.write_text('[serve]\nrestore-root = ["/x"]\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(str(cfg))
    cfg.write_text('[serve]\nrestore-roots = ["/srv/restores/"]\n')
    assert load_config(str(cfg)).serve.restore_roots == ("/srv/restores",)
