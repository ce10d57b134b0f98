"""cairn rewrite: snapshots written again without the entries matching exclude patterns; the
same data blobs, `original` set, the old ones removed with --forget, and a prune afterwards
freeing what only they used."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest

MIB = 1 << 20


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "keep" / "sub").mkdir(parents=True)
    (root / "secret" / "deep").mkdir(parents=True)
    (root / "keep" / "a.txt").write_text("alpha\n")
    (root / "keep" / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    (root / "keep" / "sub" / "noise.log").write_text("log\n")
    (root / "top.log").write_text("log\n")
    (root / "secret" / "deep" / "big.bin").write_bytes(os.urandom(3 * MIB))
    return root


def data_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "data").rglob("*") if p.is_file())


def snapshots(run_cli, repo: Path) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    res = run_cli("snapshots", "-r", repo, "--json")
    assert res.code == 0, res.err
    return res.json()  # type: ignore[no-any-return]


def test_rewrite_forget_restore_check_prune(
    tmp_path: Path, repo_path: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    repo = repo_path
    assert run_cli("backup", "-r", repo, src).code == 0
    (src / "keep" / "later.txt").write_text("later\n")
    assert run_cli("backup", "-r", repo, src).code == 0
    old = [s["id"] for s in snapshots(run_cli, repo)]
    excludes = tmp_path / "excludes"
    excludes.write_text("# logs\n*.log\n")

    dry = run_cli(
        "rewrite", "-r", repo, old[0], "latest", "--exclude", "secret", "--exclude-file",
        excludes, "--forget", "--dry-run", "--json",
    )  # fmt: skip
    assert dry.code == 0, dry.err
    removed = sorted(dry.json()["changed"][0]["removed"])
    assert removed == [f"{src}/keep/sub/noise.log", f"{src}/secret", f"{src}/top.log"]
    assert [s["id"] for s in snapshots(run_cli, repo)] == old  # nothing written

    before = data_bytes(repo)
    res = run_cli(
        "rewrite", "-r", repo, old[0], "latest", "--exclude", "secret", "--exclude-file",
        excludes, "--forget",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "rewrote 2 snapshots" in res.out and f"    {src}/secret" in res.out
    assert data_bytes(repo) - before < 64 << 10  # new trees only: the same data blobs
    now = snapshots(run_cli, repo)
    assert sorted(s["original"] for s in now) == sorted(old)
    assert not {s["id"] for s in now} & set(old)  # --forget: the old ones are gone

    out = tmp_path / "out"
    assert run_cli("restore", "-r", repo, "latest", "--target", out, "--verify").code == 0
    got = out / src.relative_to("/")
    assert not (got / "secret").exists() and not (got / "top.log").exists()
    assert not (got / "keep" / "sub" / "noise.log").exists()
    for name in ("keep/a.txt", "keep/sub/b.bin", "keep/later.txt"):
        assert filecmp.cmp(src / name, got / name, shallow=False), name
    assert sorted(p.name for p in got.rglob("*")) == ["a.txt", "b.bin", "keep", "later.txt", "sub"]
    check = run_cli("check", "-r", repo, "--read-data", "--json")
    assert check.code == 0 and check.json()["findings"] == []

    res = run_cli("prune", "-r", repo, "--json", "--max-unused", "0")
    assert res.code == 0, res.err
    assert before - data_bytes(repo) >= 3 * MIB - (64 << 10)  # the excluded file's data
    assert run_cli("check", "-r", repo, "--read-data").code == 0

    # nothing left to exclude: left alone
    res = run_cli("rewrite", "-r", repo, "--exclude", "secret", "--json")
    assert res.code == 0 and res.json()["changed"] == []
    assert {s["id"] for s in snapshots(run_cli, repo)} == {s["id"] for s in now}


def test_rewrite_keeps_the_original_without_forget(repo_path: Path, src: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("backup", "-r", repo_path, src).code == 0
    (old,) = [s["id"] for s in snapshots(run_cli, repo_path)]
    res = run_cli("rewrite", "-r", repo_path, old[:8], "-e", "*.bin", "--json")
    assert res.code == 0, res.err
    new = res.json()["changed"][0]["new"]
    listed = {s["id"]: s for s in snapshots(run_cli, repo_path)}
    assert set(listed) == {old, new} and listed[new]["original"] == old
    ls = run_cli("ls", "-r", repo_path, new).out
    assert "b.bin" not in ls and "big.bin" not in ls and "a.txt" in ls


def test_rewrite_bad_input_leaves_the_repository_alone(repo_path: Path, src: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("backup", "-r", repo_path, src).code == 0
    files = sorted(p for p in repo_path.rglob("*") if p.is_file())
    for args in (["latest"], ["latest", "--exclude-file", "/nonexistent"], ["nosuch", "-e", "x"]):
        res = run_cli("rewrite", "-r", repo_path, *args)
        assert res.code != 0 and res.err.count("\n") == 1, (args, res.err)
    res = run_cli("rewrite", "-r", repo_path, "latest")
    assert "nothing to do: give --exclude or --exclude-file" in res.err
    assert sorted(p for p in repo_path.rglob("*") if p.is_file()) == files
