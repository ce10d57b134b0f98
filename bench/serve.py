"""cairn serve: server time of its heaviest pages, and download speed against `cairn dump`.

- the snapshots page of a repository with 1,000 snapshots, and the page of a directory of
  10,000 entries: the server's time for each (TestClient, in process: no network, no
  browser), the first request (the snapshots read, the index loaded) and the median of the next;
- a directory of --size of incompressible data, and one of --text-size of text, each downloaded
  as tar, zip and tar.gz from a real server (uvicorn on 127.0.0.1, read by curl into
  /dev/null), against `cairn dump` of the same directory into /dev/null, taken in turns; the
  median of --runs each.

    .venv/bin/python -m bench.serve [--size 512M] [--text-size 256M] [--runs 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from starlette.testclient import TestClient  # noqa: E402
from tests.craft import PASSWORD, create_repo, open_repo  # noqa: E402
from tests.servefix import SECRET, running_server, serve_setup  # noqa: E402

from cairn.app.context import RepoSpec  # noqa: E402
from cairn.app.passwords import PasswordSource  # noqa: E402
from cairn.cli.main import main as cli_main  # noqa: E402
from cairn.core.units import parse_size  # noqa: E402
from cairn.model.snapshot import Snapshot  # noqa: E402
from cairn.ops.snapshots import load_snapshots  # noqa: E402
from cairn.web.app import create_app  # noqa: E402

PAGES = 10  # requests of each page after the first


def many_snapshots(repo: Path, count: int) -> None:
    """``count`` snapshots in all: copies of the repository's latest, a minute apart (the
    snapshots page reads and shows each; they need not differ)."""
    r = open_repo(repo, load_index=False)
    latest: Snapshot = load_snapshots(r)[-1]
    have = len(r.snapshot_ids())
    for i in range(count - have):
        copy = replace(latest, time=latest.time.replace(microsecond=0) - _minutes(i + 1), id="")
        r.save_snapshot(copy.encode())


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def page_times(client, url: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    assert client.get(url).status_code == 200
    first = time.perf_counter() - t0
    times = []
    for _ in range(PAGES):
        t0 = time.perf_counter()
        assert client.get(url).status_code == 200
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def write_data(root: Path, size: int) -> None:
    """``size`` bytes of random data in files of 1 to 64 MiB."""
    root.mkdir(parents=True)
    left, i = size, 0
    while left > 0:
        n = min(left, (1 + i % 64) << 20)
        with open(root / f"f{i:04d}", "wb") as f:
            for _ in range(0, n, 1 << 20):
                f.write(os.urandom(min(1 << 20, n)))
        left -= n
        i += 1


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="512M")
    p.add_argument("--text-size", default="256M")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cairn-bench-serve-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ.update(
        CAIRN_PASSWORD=PASSWORD.decode(),
        CAIRN_CACHE_DIR=str(work / "cache"),
        XDG_STATE_HOME=str(work / "state"),
        XDG_CONFIG_HOME=str(work / "config"),
    )
    served = serve_setup(work / "site", backups=1)
    wide = served.src / "wide"
    wide.mkdir()
    for i in range(10_000):
        (wide / f"entry-{i:05d}.txt").write_bytes(b"x" * (i % 100))
    assert cli_main(["run", "-c", str(served.config), "-q", "docs"]) == 0
    many_snapshots(served.repo, 1000)
    print("pages (server time, in process):")
    with TestClient(served.app()) as client:
        client.post("/login", data={"secret": SECRET})
        for name, url in (
            ("snapshots page, 1,000 snapshots", "/r/main/snapshots"),
            ("directory of 10,000 entries", f"/r/main/s/latest/browse?path={str(wide)[1:]}"),
            (
                "its last page",
                f"/r/main/s/latest/browse?path={str(wide)[1:]}&page=10",
            ),
        ):
            first, warm = page_times(client, url)
            if "snapshots" in url:
                shown = client.get(url).text.count('class="snap"')
                assert shown == 1000, shown
            print(f"  {name}: first {first * 1000:.0f} ms, then {warm * 1000:.0f} ms (median)")

    cairn = [sys.executable, "-m", "cairn"]
    env = dict(os.environ)
    repo = create_repo(work / "dl-repo")
    data, text = work / "data", work / "text"
    write_data(data, parse_size(args.size))
    write_text(text, parse_size(args.text_size))
    subprocess.run(
        [*cairn, "backup", "-q", "--repo", str(repo), str(data), str(text)], check=True, env=env
    )
    specs = {"main": RepoSpec(url=str(repo), password=PasswordSource())}
    settings = replace(served.settings, repositories=specs, jobs={})
    with running_server(create_app(settings)) as url:
        os.chdir(work)
        subprocess.run(["curl", "-sf", "-o", "/dev/null", "-c", "jar", f"{url}/login?token={SECRET}"],
                       check=True)  # fmt: skip
        for what, size, d in (
            ("incompressible data", args.size, data),
            ("text (compresses about 6:1)", args.text_size, text),
        ):
            downloads(what, size, d, repo, url, args.runs, cairn, env)
    return 0


def write_text(root: Path, size: int) -> None:
    """``size`` bytes of log-like text in files of 1 to 16 MiB (zstd and deflate shrink it
    about six times; no two lines alike, so it does not dedupe)."""
    root.mkdir(parents=True)
    left, i, line = size, 0, 0
    words = (b"GET", b"POST", b"/api/v1/items", b"/static/app.js", b"200", b"304", b"404", b"ms")
    while left > 0:
        n = min(left, (1 + i % 16) << 20)
        with open(root / f"log{i:04d}.txt", "wb") as f:
            written = 0
            while written < n:
                parts = [b"2026-01-01T00:00:%02d.%06d" % (line % 60, line % 999_983)]
                parts += [words[(line * 7 + k * 3) % len(words)] for k in range(6)]
                parts.append(b"%d" % ((line * 2_654_435_761) % 100_000))
                chunk = b" ".join(parts) + b"\n"
                chunk = chunk[: n - written]
                f.write(chunk)
                written += len(chunk)
                line += 1
        left -= n
        i += 1


def downloads(  # type: ignore[no-untyped-def]
    what: str, size: str, data: Path, repo: Path, url: str, runs: int, cairn, env
) -> None:
    """`cairn dump` of ``data`` and its downloads as tar, zip and tar.gz, taken in turns, each
    round in another order (the machine's noise spread over all); the median of each."""
    rel = str(data)[1:]
    commands = {"dump": [*cairn, "dump", "--repo", str(repo), "latest", str(data)]}
    for fmt in ("tar", "zip", "tar.gz"):
        commands[fmt] = ["curl", "-sf", "-b", "jar", "-o", "/dev/null",
                         f"{url}/r/main/s/latest/download?path={rel}&format={fmt}"]  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in commands}
    names = list(commands)
    for r in range(runs):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(timed(commands[name], env))
    mib = parse_size(size) / 2**20
    dump = statistics.median(times["dump"])
    print(f"{what}, {size} (median of {runs}):")
    print(f"  cairn dump (tar) > /dev/null: {dump:.2f} s, {mib / dump:.0f} MiB/s")
    for fmt in ("tar", "zip", "tar.gz"):
        t = statistics.median(times[fmt])
        print(f"  download as {fmt}: {t:.2f} s, {mib / t:.0f} MiB/s ({dump / t:.2f}x dump)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
