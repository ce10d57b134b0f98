"""The format spec matches the bytes: tests/refreader.py, a reader written from docs/format.md
alone, opens what cairn writes today and the checked-in version 1 fixture, verifies every blob
and restores the same tree as the source and as ``cairn restore``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import PASSWORD
from tests.fixtures.make_repo_v1 import MANIFEST, REPO, decode, summarize
from tests.refreader import SNAPSHOT_KEYS, FormatError, Reader
from tests.s3server import BUCKET
from tests.treecmp import describe, diff
from tests.treegen import IS_ROOT, Dir, build, kitchen_sink, trees

MiB = 1 << 20


def _restore_both(repo: Path, password: str, path: str, out: Path, run_cli) -> Reader:  # type: ignore[no-untyped-def]
    reader = Reader(repo, password.encode())
    reader.load_index()
    assert reader.verify_packs() == len(reader.index) > 0
    _, snap_id, latest = reader.snapshots()[-1]
    reader.restore(latest["tree"], os.fsencode(path), out / "ref")
    res = run_cli("restore", "--repo", repo, f"{snap_id}:{path}", "--target", out / "cairn")
    assert res.code == 0, res.err
    return reader


def test_the_reference_reader_restores_what_cairn_writes(
    tmp_path: Path, run_cli, monkeypatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    build(src, kitchen_sink(devices=IS_ROOT))
    (src / "sparse").write_bytes(b"")
    with open(src / "sparse", "r+b") as f:
        f.seek(100 * MiB)
        f.write(b"end")
    (src / "random").write_bytes(os.urandom(9 * MiB))  # several chunks and packs
    os.link(src / "random", src / "random-link")
    before = describe(src)
    repo = tmp_path / "repo"
    monkeypatch.setenv("CAIRN_PASSWORD", "reference")
    assert run_cli("init", "--repo", repo, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", repo, src).code == 0
    out = tmp_path / "out"
    reader = _restore_both(repo, "reference", str(src), out, run_cli)
    assert diff(before, describe(out / "ref")) == []
    assert diff(describe(out / "cairn"), describe(out / "ref")) == []
    assert reader.config["chunker"]["max_size"] == 4 * MiB  # §5.4
    source_blocks = os.stat(src / "sparse").st_blocks
    assert os.stat(out / "ref" / "sparse").st_blocks <= source_blocks + 64


def test_the_reference_reader_restores_the_version_1_fixture(
    tmp_path: Path, run_cli, monkeypatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("restoring owners and a device node needs root")
    manifest = json.loads(MANIFEST.read_text())
    repo = tmp_path / "repo-v1"
    shutil.copytree(REPO, repo)
    monkeypatch.setenv("CAIRN_PASSWORD", manifest["password"])
    out = tmp_path / "out"
    _restore_both(repo, manifest["password"], manifest["source"], out, run_cli)
    got = {path: summarize(entry) for path, entry in describe(out / "ref").items()}
    want = {decode(path): decode(entry) for path, entry in manifest["entries"]}
    assert got == want
    assert diff(describe(out / "cairn"), describe(out / "ref")) == []


def test_the_reference_reader_refuses_a_snapshot_key_the_spec_does_not_list(
    tmp_path: Path, run_cli, monkeypatch
) -> None:
    """What makes a change to the bytes fail: an unknown snapshot key is rejected (§1.2)."""
    repo = tmp_path / "repo"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    monkeypatch.setenv("CAIRN_PASSWORD", "reference")
    assert run_cli("init", "--repo", repo).code == 0
    assert run_cli("backup", "--repo", repo, src).code == 0
    reader = Reader(repo, b"reference")
    assert len(reader.snapshots()) == 1
    saved = SNAPSHOT_KEYS.pop("original")
    try:
        with pytest.raises(FormatError, match="original"):
            reader.snapshots()
    finally:
        SNAPSHOT_KEYS["original"] = saved


def test_the_reference_reader_restores_what_cairn_writes_to_s3(
    tmp_path: Path, run_cli, s3_env, s3_url, monkeypatch
) -> None:
    """The same bytes on an object store: downloaded to a directory, object name = path (§2.1)."""
    monkeypatch.setenv("CAIRN_PASSWORD", "reference")
    src = tmp_path / "src"
    src.mkdir()
    build(src, kitchen_sink(devices=IS_ROOT))
    before = describe(src)
    assert run_cli("init", "--repo", s3_url).code == 0
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    prefix = s3_url.split("/", 4)[4].strip("/") + "/"
    repo = tmp_path / "download"
    client = s3_env.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            dest = repo / obj["Key"][len(prefix) :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(BUCKET, obj["Key"], str(dest))
    out = tmp_path / "out"
    _restore_both(repo, "reference", str(src), out, run_cli)
    assert diff(before, describe(out / "ref")) == []
    assert diff(describe(out / "cairn"), describe(out / "ref")) == []


def test_the_worked_example_shows_what_init_and_backup_write_today(
    tmp_path: Path, run_cli, monkeypatch
) -> None:
    """docs/format.md §10.4 was made by scripts/format_example.py: its config and snapshot keys
    must be those of a repository made now (run the script again when this fails)."""
    spec = (Path(__file__).resolve().parent.parent / "docs" / "format.md").read_text()
    example = spec.split("### 10.4 Worked example")[1].split("\n## 11.")[0]
    monkeypatch.setenv("CAIRN_PASSWORD", "reference")
    src = tmp_path / "src"
    src.mkdir()
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo).code == 0
    assert run_cli("backup", "--repo", repo, src).code == 0
    reader = Reader(repo, b"reference")
    shown = json.loads(example.split("The payload, decoded:\n\n```\n")[1].split("```")[0])
    now = reader.config
    assert {k: v for k, v in shown["chunker"].items() if k != "seed"} == {
        k: v for k, v in now["chunker"].items() if k != "seed"
    }
    assert (shown["pack_size"], shown["compression_level"]) == (
        now["pack_size"],
        now["compression_level"],
    )
    snapshot = example.split("decoded whole:\n\n```\n")[1].split("\n```")[0]
    keys = [line.split('"')[1] for line in snapshot.splitlines() if line.startswith('  "')]
    assert keys == list(reader.snapshots()[0][2])


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tree=trees(devices=IS_ROOT))
def test_the_reference_reader_restores_any_tree(tree: Dir, repo_path: Path, run_cli) -> None:
    base = Path(tempfile.mkdtemp(prefix="cairn-refreader-"))
    try:
        src = base / "src"
        src.mkdir()
        build(src, tree)
        before = describe(src)
        assert run_cli("backup", "--repo", repo_path, src).code == 0
        reader = Reader(repo_path, PASSWORD.encode())
        reader.load_index()
        reader.restore(reader.snapshots()[-1][2]["tree"], os.fsencode(src), base / "out")
        assert diff(before, describe(base / "out")) == []
    finally:
        shutil.rmtree(base)
