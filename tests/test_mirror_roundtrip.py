"""The metadata-rich tree through `cairn mirror push` and `cairn mirror pull`, as a user runs
them: to a local directory read back over plain HTTP, and to S3 read back over S3; then a
change, a rename and a delete pushed and pulled again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.httpserve import serve
from tests.treecmp import describe, diff
from tests.treegen import IS_ROOT, build, kitchen_sink


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "cache"))


def _push(run_cli, src: Path, dest: str, *args: str):  # type: ignore[no-untyped-def]
    res = run_cli("mirror", "push", src, dest, "--json", *args)
    assert res.code == 0, res.err
    return res.json()


def _pull(run_cli, src: str, out: Path, *args: str):  # type: ignore[no-untyped-def]
    res = run_cli("mirror", "pull", src, out, "--json", *args)
    assert res.code == 0, res.err
    return res.json()


def _round_trip(run_cli, src: Path, dest: str, read_from: str, out: Path) -> None:  # type: ignore[no-untyped-def]
    src.mkdir()
    build(src, kitchen_sink(devices=IS_ROOT))
    assert run_cli("mirror", "init", dest).code == 0
    first = _push(run_cli, src, dest)
    assert first["generation"] == 1 and first["unreadable"] == []
    before = describe(src, atime=False)
    pulled = _pull(run_cli, read_from, out)
    assert diff(before, describe(out, atime=False)) == []
    assert pulled["downloaded"] > 0 and pulled["errors"] == []
    again = _pull(run_cli, read_from, out)
    assert again["downloaded"] == 0 and again["bytes"] == 0
    # a change, a rename and a delete: pushed as one upload, one copy, one removal
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    big = max(files, key=lambda p: p.stat().st_size if p.stat().st_nlink == 1 else -1)
    renamed = big.with_name(big.name + ".moved")
    os.rename(big, renamed)
    (src / "fresh.txt").write_text("new\n")
    victim = next(p for p in files if p != big and p.stat().st_nlink == 1 and p.exists())
    victim.unlink()
    second = _push(run_cli, src, dest, "--delete")
    assert second["copied"] >= 1 and second["uploaded"] == 1 and second["removed"] == 2
    _pull(run_cli, read_from, out, "--delete")
    assert diff(describe(src, atime=False), describe(out, atime=False)) == []


def test_push_to_a_directory_then_pull_over_plain_http(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    mirror = tmp_path / "mirror"
    with serve(mirror.parent) as server:
        _round_trip(
            run_cli, tmp_path / "src", str(mirror), f"{server.url}/mirror", tmp_path / "out"
        )
        res = run_cli("mirror", "pull", f"{server.url}/not-there", tmp_path / "x")
        assert res.code == 1 and "not a mirror" in res.err and len(res.err.splitlines()) == 1


def test_push_to_s3_then_pull_from_s3(tmp_path: Path, s3_url: str, run_cli) -> None:  # type: ignore[no-untyped-def]
    _round_trip(run_cli, tmp_path / "src", s3_url, s3_url, tmp_path / "out")


def test_pull_with_include_and_a_tampered_object(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    src, mirror, out = tmp_path / "src", tmp_path / "mirror", tmp_path / "out"
    (src / "a").mkdir(parents=True)
    (src / "a" / "one").write_text("1")
    (src / "b").mkdir()
    (src / "b" / "two").write_text("2")
    assert run_cli("mirror", "init", mirror).code == 0
    _push(run_cli, src, str(mirror))
    got = _pull(run_cli, str(mirror), out, "--include", "/a")
    assert (out / "a" / "one").read_text() == "1" and not (out / "b").exists()
    assert got["downloaded"] == 1
    (mirror / "b" / "two").write_text("X")
    shutil.rmtree(out)
    res = run_cli("mirror", "pull", mirror, out)
    assert res.code == 3 and "b/two" in res.err
    assert (out / "a" / "one").read_text() == "1" and not (out / "b" / "two").exists()
