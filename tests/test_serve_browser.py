"""cairn serve end to end, in Debian's headless Chromium through Playwright: log in with the
token, see a job's last run, open a snapshot, search and download a file, download a directory
as .zip, restore a directory, run a job and follow its progress to the end, compare two
snapshots. A failing test leaves a screenshot of the page in its tmp_path."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cairn.cli.main import main as cli_main
from tests import treecmp
from tests.servefix import SECRET, Served, running_server, serve_setup

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no /usr/bin/chromium")
TIMEOUT = 20_000  # ms any one page condition may take


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str, Any]]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    base = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_PASSWORD", "correct horse battery staple")
        mp.setenv("CAIRN_CACHE_DIR", str(base / "cache"))
        mp.setenv("XDG_STATE_HOME", str(base / "xdg-state"))
        mp.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))
        served = serve_setup(base)
        with (
            running_server(served.app()) as url,
            playwright_api.sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                yield served, url, browser
            finally:
                browser.close()


@pytest.fixture
def page(site: tuple[Served, str, Any], tmp_path: Path) -> Iterator[Any]:
    """A logged-in page; on failure its screenshot is saved as tmp_path/failure.png."""
    _, url, browser = site
    context = browser.new_context(base_url=url, accept_downloads=True)
    context.set_default_timeout(TIMEOUT)
    pg = context.new_page()
    try:
        with screenshot_on_failure(pg, tmp_path):
            pg.goto("/login")
            pg.fill("input[name=secret]", SECRET)
            pg.click("button:has-text('Log in')")
            pg.wait_for_url(url + "/")
        yield pg
    finally:
        context.close()


@contextmanager
def screenshot_on_failure(pg: Any, tmp_path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        pg.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise


def rel(path: Path) -> str:
    return str(path)[1:]


def test_login_shows_the_jobs_last_run(page: Any, tmp_path: Path) -> None:
    with screenshot_on_failure(page, tmp_path):
        row = page.locator("#job-docs")
        row.wait_for()
        assert "snapshot" in row.inner_text() or "ok" in row.inner_text()
        assert "never" not in row.inner_text()


def test_wrong_token_stays_on_the_login_page(site: tuple[Served, str, Any], tmp_path: Path) -> None:
    _, url, browser = site
    context = browser.new_context(base_url=url)
    pg = context.new_page()
    try:
        with screenshot_on_failure(pg, tmp_path):
            pg.goto("/login")
            pg.fill("input[name=secret]", "wrong")
            pg.click("button:has-text('Log in')")
            pg.locator("#login-failed").wait_for()
            pg.goto("/")
            assert pg.url.endswith("/login")
    finally:
        context.close()


def test_open_a_snapshot_search_and_download_a_file(
    page: Any, site: tuple[Served, str, Any], tmp_path: Path
) -> None:
    served = site[0]
    with screenshot_on_failure(page, tmp_path):
        page.click("#repo-main h2 a")
        page.locator("a.snap").first.click()
        page.locator("table.entries").wait_for()
        page.fill("#search", "blob.bin")
        page.click("button:has-text('Search')")
        link = page.locator("a.file", has_text="blob.bin")
        with page.expect_download() as info:
            link.click()
        got = Path(info.value.path()).read_bytes()
        assert got == (served.src / "docs" / "deep" / "blob.bin").read_bytes()


def test_download_a_directory_as_zip(
    page: Any, site: tuple[Served, str, Any], tmp_path: Path
) -> None:
    served = site[0]
    docs = served.src / "docs"
    with screenshot_on_failure(page, tmp_path):
        page.goto(f"/r/main/s/latest/browse?path={rel(docs)}")
        with page.expect_download() as info:
            page.click("#download-zip")
        with zipfile.ZipFile(info.value.path()) as z:
            z.extractall(tmp_path / "unzipped")
        got = tmp_path / "unzipped" / rel(docs)
        for f in ("report.txt", "added.txt", "deep/notes.md", "deep/blob.bin"):
            assert (got / f).read_bytes() == (docs / f).read_bytes(), f


def test_restore_a_directory(page: Any, site: tuple[Served, str, Any], tmp_path: Path) -> None:
    served = site[0]
    deep = served.src / "docs" / "deep"
    target = served.restore_root / "deep-restored"
    with screenshot_on_failure(page, tmp_path):
        page.goto(f"/r/main/s/latest/browse?path={rel(deep)}")
        page.fill("#restore-target", str(target))
        page.click("#restore")
        page.locator("#operation[data-done]").wait_for()
        assert page.locator("#op-outcome").inner_text() == "ok"
    assert (
        treecmp.diff(treecmp.describe(deep, atime=False), treecmp.describe(target, atime=False))
        == []
    )


def test_run_a_job_and_follow_its_progress(page: Any, tmp_path: Path) -> None:
    with screenshot_on_failure(page, tmp_path):
        page.locator("#job-docs").get_by_text("Run now").click()
        page.locator("#operation").wait_for()
        # data-done is set by the page's script from the event stream, never by the server
        page.locator("#operation[data-done]").wait_for()
        assert page.locator("#op-outcome").inner_text() == "ok"
        assert "job docs: ok" in page.locator("#op-summary").inner_text()
        page.goto("/history")
        assert "job docs" in page.locator("table.history").inner_text()


def test_diff_two_snapshots(page: Any, tmp_path: Path) -> None:
    with screenshot_on_failure(page, tmp_path):
        page.goto("/r/main/diff")
        options = page.locator("#diff-old option")
        page.select_option("#diff-old", options.nth(options.count() - 1).get_attribute("value"))
        page.click("#compare")
        page.locator("#diff-counts").wait_for()
        assert "docs/added.txt" in page.locator("table.changes").inner_text()


def test_the_cost_page_charts_storage_by_month(page: Any, tmp_path: Path) -> None:
    with screenshot_on_failure(page, tmp_path):
        page.locator("#repo-main").get_by_text("Cost").click()
        chart = page.locator("#storage-chart")
        chart.wait_for()
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50
        bar = chart.locator("rect").last
        bar_box = bar.bounding_box()
        assert bar_box is not None and bar_box["height"] > 10 and bar_box["width"] > 5
        assert bar.evaluate("r => getComputedStyle(r).fill") not in ("none", "rgb(0, 0, 0)")
        month = chart.locator("text.month").last.text_content()
        assert month is not None and len(month) == 7 and month[4] == "-"


def test_a_job_cairn_run_ran_is_in_the_history(
    page: Any, site: tuple[Served, str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = site[0]
    monkeypatch.setenv("CAIRN_PASSWORD", "correct horse battery staple")
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(served.root / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(served.root / "xdg-state"))
    monkeypatch.setenv("CAIRN_STATE_DIR", str(served.settings.state_dir))
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    with screenshot_on_failure(page, tmp_path):
        page.goto("/history")
        first = page.locator("table.history tbody tr").first
        assert "cairn run" in first.locator("td.origin").inner_text()
        assert "job docs" in first.inner_text()
        first.locator("a").click()
        assert page.locator("#run-outcome").inner_text() == "ok"


def test_phone_width_has_no_horizontal_scroll(
    site: tuple[Served, str, Any], tmp_path: Path
) -> None:
    _, url, browser = site
    context = browser.new_context(base_url=url, viewport={"width": 375, "height": 740})
    pg = context.new_page()
    try:
        with screenshot_on_failure(pg, tmp_path):
            pg.goto(f"/login?token={SECRET}")
            pg.locator("#job-docs").wait_for()
            assert pg.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        context.close()
