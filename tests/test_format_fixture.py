"""A repository written by an earlier cairn (format version 1, tests/fixtures/repo-v1, made by
tests/fixtures/make_repo_v1.py) must open, check and restore byte for byte, with all its
metadata, in every later version: the format is a promise, not whatever the code does now."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fixtures.make_repo_v1 import MANIFEST, REPO, decode, summarize
from tests.treecmp import describe

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="restoring owners and a device node needs root"
)


@pytest.fixture
def fixture_repo(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    manifest = json.loads(MANIFEST.read_text())
    repo = tmp_path / "repo-v1"
    shutil.copytree(REPO, repo)  # nothing may write to the checked-in bytes
    monkeypatch.setenv("CAIRN_PASSWORD", manifest["password"])
    return repo, manifest


def test_the_version_1_fixture_opens_and_checks(fixture_repo, run_cli):
    repo, _ = fixture_repo
    res = run_cli("check", "--repo", repo, "--read-data", "--json")
    assert res.code == 0, res.out + res.err
    report = res.json()
    assert report["ok"] and report["findings"] == [] and report["snapshots"] == 1
    snaps = run_cli("snapshots", "--repo", repo, "--json").json()
    assert [(s["host"], s["tags"]) for s in snaps] == [("fixture", ["v1"])]
    config = json.loads(run_cli("cat", "--repo", repo, "config").out)
    assert config["version"] == 1 and config["pack_size"] == 64 << 10


def test_the_version_1_fixture_restores_byte_for_byte(fixture_repo, tmp_path, run_cli):
    repo, manifest = fixture_repo
    out = tmp_path / "out"
    res = run_cli("restore", "--repo", repo, f"latest:{manifest['source']}", "--target", out)
    assert res.code == 0, res.err
    got = {path: summarize(entry) for path, entry in describe(out).items()}
    want = {decode(path): decode(entry) for path, entry in manifest["entries"]}
    assert sorted(got) == sorted(want)
    for path in sorted(want):
        assert got[path] == want[path], path
    # sparse stays sparse, and the names that are not UTF-8 are the same bytes
    assert os.stat(out / "sparse").st_blocks * 512 < 8 << 20
    assert "caf\udce9" in os.listdir(out)


def test_the_fixture_is_never_rewritten():
    """The generator refuses to overwrite it, and the checked-in manifest names its bytes."""
    assert (REPO / "config").is_file() and MANIFEST.is_file()
    names = {p.relative_to(REPO).parts[0] for p in Path(REPO).rglob("*") if p.is_file()}
    assert names == {"config", "keys", "data", "index", "snapshots"}
