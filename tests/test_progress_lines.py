"""Progress for logs: with stderr not a terminal, one plain line every CAIRN_PROGRESS_INTERVAL
seconds (here 0: a line at every step), with totals and percentages; none with -q. And the
backup's scanner counts what the backup reads."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cairn.ops.backup.archiver import BackupOptions
from cairn.ops.backup.scanner import Scanner
from cairn.ops.excludes import PathMatcher

LINE = re.compile(
    r"^\[\d+:\d\d\] (?P<phase>[a-z ]+): (?P<done>\d+) of (?P<total>\d+)(?P<more>\+?) "
    r"(?P<unit>files|packs), .* \((?P<pct>\d+)%\)"
)
EXCLUDES = ("*.tmp", "cache")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """Files of many sizes, some excluded, a hardlink, a symlink and an empty file."""
    root = tmp_path / "src"
    for d in ("a", "a/deep", "b", "cache/inner"):
        (root / d).mkdir(parents=True)
    for i in range(24):
        (root / ("a" if i % 2 else "b") / f"f{i}").write_bytes(os.urandom(1000 + i * 9000))
    (root / "a" / "deep" / "big").write_bytes(os.urandom(600_000))
    (root / "b" / "empty").write_bytes(b"")
    (root / "a" / "scratch.tmp").write_bytes(os.urandom(50_000))
    (root / "cache" / "inner" / "junk").write_bytes(os.urandom(70_000))
    os.link(root / "a" / "f1", root / "b" / "same-as-f1")
    os.symlink("f3", root / "a" / "to-f3")
    return root


@pytest.fixture
def lines_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_PROGRESS_INTERVAL", "0")


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def progress(err: str, phase: str) -> list[re.Match[str]]:
    return [m for m in map(LINE.match, err.splitlines()) if m and m["phase"] == phase]


def assert_grows_to_100(lines: list[re.Match[str]], total: int) -> None:
    """Once the total is final, the counts and percentages only grow, and end at 100%."""
    final = [m for m in lines if not m["more"]]
    assert final, "no line with a final total"
    assert {int(m["total"]) for m in final} == {total}
    pcts = [int(m["pct"]) for m in final]
    done = [int(m["done"]) for m in final]
    assert pcts == sorted(pcts) and done == sorted(done)
    assert pcts[-1] == 100 and done[-1] == total


def backup_json(run_cli, repo: Path, *args: str | Path) -> dict:  # type: ignore[no-untyped-def]
    return ok(run_cli("backup", "--repo", repo, "--json", *args)).json()  # type: ignore[no-any-return]


def summary_files(summary: dict) -> int:  # type: ignore[type-arg]
    return summary["files_new"] + summary["files_changed"] + summary["files_unchanged"]


def excludes() -> list[str]:
    return [a for p in EXCLUDES for a in ("-e", p)]


def test_scanner_counts_what_the_backup_reads(run_cli, repo_path: Path, src: Path) -> None:  # type: ignore[no-untyped-def]
    files, nbytes = Scanner(
        [os.fsencode(src)], BackupOptions(PathMatcher(EXCLUDES), one_file_system=True)
    ).count()
    summary = backup_json(run_cli, repo_path, src, *excludes(), "-x")["summary"]
    assert (files, nbytes) == (summary_files(summary), summary["bytes_total"])
    assert files == 26  # 24 + big + empty; the hardlink once, the excluded ones not at all
    # without the excludes it counts more, as the backup reads more
    more = Scanner([os.fsencode(src)], BackupOptions()).count()
    summary = backup_json(run_cli, repo_path, src)["summary"]
    assert more == (summary_files(summary), summary["bytes_total"]) == (28, nbytes + 120_000)


def test_backup_lines_end_at_100(run_cli, repo_path: Path, src: Path, lines_every_step) -> None:  # type: ignore[no-untyped-def]
    res = ok(run_cli("backup", "--repo", repo_path, src, *excludes()))
    lines = progress(res.err, "backup")
    assert_grows_to_100(lines, 26)
    assert "ETA" in lines[-1].string


def test_a_backup_with_a_parent_takes_its_totals_as_an_estimate(
    run_cli, repo_path: Path, src: Path, lines_every_step
) -> None:  # type: ignore[no-untyped-def]
    """The daily backup does not count its paths again: its parent's totals stand in, marked
    as an estimate, from the first line."""
    ok(run_cli("backup", "--repo", repo_path, src, *excludes()))
    (src / "b" / "new").write_bytes(os.urandom(3000))
    res = ok(run_cli("backup", "--repo", repo_path, src, *excludes()))
    lines = [line for line in res.err.splitlines() if line.startswith("[")]
    assert lines and all(" of ~26 files" in line for line in lines), lines
    assert "+" not in "".join(lines)


def test_restore_and_verify_lines(
    run_cli, repo_path: Path, src: Path, tmp_path: Path, lines_every_step
) -> None:  # type: ignore[no-untyped-def]
    ok(run_cli("backup", "--repo", repo_path, src, *excludes()))
    res = ok(run_cli("restore", "--repo", repo_path, "latest", "-t", tmp_path / "r", "--verify"))
    restored, verified = progress(res.err, "restore"), progress(res.err, "verify")
    assert_grows_to_100(restored, 26)  # the snapshot's summary gives the total at once
    assert int(restored[0]["pct"]) < 100 and not any(m["more"] for m in restored)
    assert_grows_to_100(verified, 26)
    assert int(verified[0]["pct"]) < 100
    assert res.err.index(verified[0].string) > res.err.index(restored[-1].string)


def test_a_restore_in_pack_order_counts_the_holes(
    run_cli, repo_path: Path, tmp_path: Path, lines_every_step
) -> None:  # type: ignore[no-untyped-def]
    """Read in pack order, the blob of zeros is never read: the holes of a sparse file are
    counted when it is complete, so the bytes end at 100% as well."""
    src = tmp_path / "sparse"
    src.mkdir()
    with open(src / "disk.img", "wb") as f:
        f.write(os.urandom(200_000))
        f.truncate(48 << 20)  # ends in a hole: blobs of zeros
    (src / "small").write_bytes(os.urandom(5000))
    ok(run_cli("backup", "--repo", repo_path, src))
    target = tmp_path / "r"
    res = ok(
        run_cli("restore", "--repo", repo_path, "latest", "-t", target, "--read-order", "pack")
    )
    lines = progress(res.err, "restore")
    assert_grows_to_100(lines, 2)
    assert re.search(r"48\.\d+ MiB of 48\.\d+ MiB \(100%\)", lines[-1].string), lines[-1].string


def test_restore_of_a_part_counts_its_trees(
    run_cli, repo_path: Path, src: Path, tmp_path: Path, lines_every_step
) -> None:  # type: ignore[no-untyped-def]
    ok(run_cli("backup", "--repo", repo_path, src))
    part = f"latest:{src}/a"
    res = ok(run_cli("restore", "--repo", repo_path, part, "-t", tmp_path / "r", "-e", "f1*"))
    # a/: 12 files f1..f23, big and scratch.tmp, without f1, f11, ..., f19 (6 of them)
    assert_grows_to_100(progress(res.err, "restore"), 12 + 2 - 6)


def test_check_read_data_lines(run_cli, repo_path: Path, src: Path, lines_every_step) -> None:  # type: ignore[no-untyped-def]
    ok(run_cli("backup", "--repo", repo_path, src))
    res = ok(run_cli("check", "--repo", repo_path, "--read-data"))
    lines = progress(res.err, "read data")
    packs = int(lines[-1]["total"])
    assert packs >= 2  # 1 MiB packs
    assert_grows_to_100(lines, packs)
    assert int(lines[0]["pct"]) < 100
    assert all(m["unit"] == "packs" for m in lines)


def test_dump_to_a_file_lines(
    run_cli, repo_path: Path, src: Path, tmp_path: Path, lines_every_step
) -> None:  # type: ignore[no-untyped-def]
    ok(run_cli("backup", "--repo", repo_path, src))
    res = ok(
        run_cli("dump", "--repo", repo_path, "latest", f"{src}/a/deep/big", "-o", tmp_path / "big")
    )
    assert_grows_to_100(progress(res.err, "dump"), 1)
    res = ok(run_cli("dump", "--repo", repo_path, "latest", str(src), "-o", tmp_path / "t.tar"))
    assert_grows_to_100(progress(res.err, "dump"), 28)


def test_quiet_prints_no_progress(
    run_cli, repo_path: Path, src: Path, tmp_path: Path, lines_every_step
) -> None:  # type: ignore[no-untyped-def]
    for args in (
        ("backup", "-q", "--repo", repo_path, src),
        ("restore", "-q", "--repo", repo_path, "latest", "-t", tmp_path / "r", "--verify"),
        ("check", "-q", "--repo", repo_path, "--read-data"),
    ):
        res = ok(run_cli(*args))
        assert res.err == ""


def test_default_interval_is_quiet_for_a_short_run(run_cli, repo_path: Path, src: Path) -> None:  # type: ignore[no-untyped-def]
    """Without CAIRN_PROGRESS_INTERVAL a line comes once a minute: a short backup has none."""
    res = ok(run_cli("backup", "--repo", repo_path, src))
    assert not progress(res.err, "backup") and "backup:" not in res.err


def test_bad_interval_is_one_line(run_cli, repo_path: Path, src: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CAIRN_PROGRESS_INTERVAL", "soon")
    res = run_cli("backup", "--repo", repo_path, src)
    assert res.code == 2
    assert res.err.strip().splitlines() == [
        "cairn: error: CAIRN_PROGRESS_INTERVAL='soon': expected a number of seconds (0 or more)"
    ]
    assert ok(run_cli("snapshots", "--repo", repo_path, "--json")).json() == []  # none saved


def test_no_scan_shows_no_total(run_cli, repo_path: Path, src: Path, lines_every_step) -> None:  # type: ignore[no-untyped-def]
    res = ok(run_cli("backup", "--repo", repo_path, src, "--no-scan"))
    lines = [line for line in res.err.splitlines() if " backup: " in line]
    assert lines and all(" of " not in line and "%" not in line for line in lines)
    assert lines[-1].split(": ", 1)[1].startswith("28 files, ")  # the count goes on


def test_a_backup_counts_its_paths_only_where_a_total_is_shown(
    run_cli, repo_path: Path, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --json or --quiet no progress is printed, so no scan runs beside the backup (on
    a million small files it costs about 4% of the first backup's CPU); the same for a job."""
    started: list[bool] = []
    real = Scanner.start
    monkeypatch.setattr(Scanner, "start", lambda s, report: started.append(True) or real(s, report))
    for k, (flags, scans) in enumerate((((), True), (("--json",), False), (("--quiet",), False))):
        started.clear()
        ok(run_cli("backup", "--repo", repo_path, src, "--force", *flags))
        assert bool(started) is scans, ("backup", flags)
        # a job's first backup of its paths (a later one takes its total from the parent)
        paths = tmp_path / f"job{k}"
        paths.mkdir()
        (paths / "f").write_text("data\n")
        config = tmp_path / f"config{k}.toml"
        config.write_text(
            f'[repositories.main]\nurl = "{repo_path}"\npassword-env = "CAIRN_PASSWORD"\n\n'
            f'[jobs.j]\nrepository = "main"\npaths = ["{paths}"]\n'
        )
        started.clear()
        ok(run_cli("run", "-c", config, *flags))
        assert bool(started) is scans, ("run", flags)


def test_prune_repack_lines(run_cli, repo_path: Path, src: Path, lines_every_step) -> None:  # type: ignore[no-untyped-def]
    ok(run_cli("backup", "--repo", repo_path, src))
    for f in (src / "b").iterdir():
        f.unlink()
    ok(run_cli("backup", "--repo", repo_path, src))
    ok(run_cli("forget", "--repo", repo_path, "--keep-last", "1"))
    res = ok(run_cli("prune", "--repo", repo_path, "--max-unused", "0"))
    lines = progress(res.err, "repack")
    assert_grows_to_100(lines, int(lines[-1]["total"]))
    assert int(lines[-1]["total"]) >= 1
