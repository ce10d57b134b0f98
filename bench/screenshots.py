"""The screenshots of docs/images/: each page of `cairn serve`, as Debian's Chromium shows it
(through Playwright, as the end-to-end tests drive it), on a sample repository made here.

    .venv/bin/python -m bench.screenshots [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402
from tests.craft import PASSWORD  # noqa: E402
from tests.servefix import SECRET, running_server, serve_setup  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WIDE = {"width": 1100, "height": 720}
PHONE = {"width": 390, "height": 760}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cairn-screenshots-"))
    os.environ.update(
        CAIRN_PASSWORD=PASSWORD.decode(),
        CAIRN_CACHE_DIR=str(work / "cache"),
        XDG_STATE_HOME=str(work / "state"),
        XDG_CONFIG_HOME=str(work / "config"),
    )
    served = serve_setup(work / "site", backups=3)
    docs = str(served.src / "docs")[1:]
    with running_server(served.app()) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(base_url=url, viewport=WIDE)
        page = context.new_page()

        def shot(name: str) -> None:
            page.screenshot(path=str(out / f"serve-{name}.png"), full_page=True)
            print(out / f"serve-{name}.png")

        page.goto("/login")
        shot("login")
        page.fill("input[name=secret]", SECRET)
        page.click("button:has-text('Log in')")
        page.wait_for_url(url + "/")
        page.locator("#job-docs").get_by_text("Run now").click()
        page.locator("#operation[data-done]").wait_for()
        shot("operation")
        page.goto("/")
        shot("overview")
        page.goto("/r/main/snapshots")
        shot("snapshots")
        page.goto(f"/r/main/s/latest/browse?path={docs}")
        shot("browse")
        page.goto("/r/main/s/latest/search?q=*.md")
        shot("search")
        page.goto("/r/main/diff")
        options = page.locator("#diff-old option")
        page.select_option("#diff-old", options.nth(options.count() - 1).get_attribute("value"))
        page.click("#compare")
        page.locator("#diff-counts").wait_for()
        shot("diff")
        page.goto("/history")
        shot("history")
        page.goto("/r/main/cost?provider=aws")
        shot("cost")
        page.set_viewport_size(PHONE)
        page.goto("/")
        shot("phone")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
