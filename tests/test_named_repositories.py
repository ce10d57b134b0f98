"""Repositories named in the configuration file, used by every command: --repo @NAME (or a
bare NAME that is no local path), the configuration's password and store options, and the
command line's options over them."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from cairn.storage.s3config import S3Location
from tests.conftest import PASSWORD


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    (d / "a.txt").write_text("alpha\n")
    (d / "b.bin").write_bytes(os.urandom(20_000))
    return d


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two local repositories with their own password files and cache directories; the
    environment's password is wrong, so only the configuration's opens them."""
    (tmp_path / "pw-main").write_text(PASSWORD + "\n")
    (tmp_path / "pw-other").write_text("another password\n")
    path = tmp_path / "config.toml"
    path.write_text(
        f'[repositories.main]\nurl = "{tmp_path / "repo-main"}"\npassword-file = "pw-main"\n'
        f'cache-dir = "{tmp_path / "cache-main"}"\n\n'
        f'[repositories.other]\nurl = "{tmp_path / "repo-other"}"\npassword-file = "pw-other"\n'
    )
    monkeypatch.setenv("CAIRN_PASSWORD", "wrong")
    monkeypatch.chdir(tmp_path)
    return path


def test_every_command_opens_a_named_repository(
    tmp_path: Path, cfg: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("init", "-r", "@main", "--config", cfg, "--pack-size", "1M").code == 0
    assert (tmp_path / "repo-main" / "config").is_file()
    res = run_cli("backup", "--repo", "@main", "--config", cfg, src, "--json")
    assert res.code == 0, res.err
    snap = res.json()["id"]
    # the configuration's cache directory holds this repository's files cache
    assert list((tmp_path / "cache-main").glob("*/files.sqlite"))
    # a bare name that is no local path, and $CAIRN_CONFIG for the file
    os.environ["CAIRN_CONFIG"] = str(cfg)
    try:
        res = run_cli("snapshots", "-r", "main", "--json")
        assert res.code == 0, res.err
        assert [s["id"] for s in res.json()] == [snap]
        out = tmp_path / "out"
        assert run_cli("restore", "-r", "main", "latest", "--target", out).code == 0
        assert (out / src.relative_to("/") / "a.txt").read_text() == "alpha\n"
        assert run_cli("check", "-r", "@main").code == 0
        assert run_cli("key", "list", "-r", "@main").code == 0
    finally:
        del os.environ["CAIRN_CONFIG"]


def test_the_command_line_overrides_the_configuration(
    tmp_path: Path, cfg: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("init", "-r", "@main", "--config", cfg).code == 0
    # --password-file over the configuration's password-file
    res = run_cli("snapshots", "-r", "@main", "--config", cfg, "--password-file", "pw-other")
    assert res.code != 0 and "wrong password" in res.err
    # --cache-dir over the configuration's cache-dir
    res = run_cli("backup", "-r", "@main", "--config", cfg, "--cache-dir", tmp_path / "c2", src)
    assert res.code == 0, res.err
    assert list((tmp_path / "c2").glob("*/files.sqlite"))
    assert not (tmp_path / "cache-main").exists()


def test_a_repository_without_password_in_the_config_uses_the_usual_chain(
    tmp_path: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[repositories.nopw]\nurl = "{tmp_path / "r"}"\n')
    assert run_cli("init", "-r", "@nopw", "--config", cfg).code == 0  # $CAIRN_PASSWORD
    os.environ["CAIRN_REPOSITORY"] = "@nopw"
    try:
        res = run_cli("snapshots", "--config", cfg, "--json")
    finally:
        del os.environ["CAIRN_REPOSITORY"]
    assert res.code == 0, res.err and res.json() == []


def test_unknown_names_and_real_paths(tmp_path: Path, cfg: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    res = run_cli("snapshots", "-r", "@nope", "--config", cfg)
    assert res.code != 0
    assert res.err.count("\n") == 1, res.err
    assert f"no repository 'nope' in {cfg} (repositories: main, other)" in res.err
    # a bare name not in the file is a path, as before
    res = run_cli("init", "-r", "plain", "--config", cfg)
    assert res.code == 0, res.err
    assert (tmp_path / "plain" / "config").is_file()
    # a local directory of the name wins over the configuration's repository
    (tmp_path / "main").mkdir()
    res = run_cli("init", "-r", "main", "--config", cfg)
    assert res.code == 0, res.err  # with $CAIRN_PASSWORD, not the configuration's
    assert (tmp_path / "main" / "config").is_file()
    assert not (tmp_path / "repo-main").exists()


def test_named_s3_repository(
    tmp_path: Path, s3_env, s3_url: str, src: Path, run_cli, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[repositories.cloud]\nurl = "{s3_url}"\npassword-env = "CLOUD_PW"\n'
        'storage-class = "GLACIER_IR"\nretries = 3\n'
    )
    monkeypatch.setenv("CLOUD_PW", PASSWORD)
    monkeypatch.setenv("CAIRN_PASSWORD", "wrong")
    assert run_cli("init", "-r", "@cloud", "--config", cfg, "--pack-size", "1M").code == 0
    assert run_cli("backup", "-r", "@cloud", "--config", cfg, src).code == 0
    (src / "c.bin").write_bytes(os.urandom(20_000))
    res = run_cli("backup", "-r", "@cloud", "--config", cfg, src, "--storage-class", "STANDARD_IA")
    assert res.code == 0, res.err
    loc = S3Location.parse(s3_url)
    classes: collections.Counter[str] = collections.Counter()
    for page in (
        s3_env.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=loc.bucket, Prefix=f"{loc.prefix}data/")
    ):
        for obj in page["Contents"]:
            classes[obj["StorageClass"]] += 1
    # the first backup's data pack in the configured class, the second's in the given one
    assert classes["GLACIER_IR"] >= 1 and classes["STANDARD_IA"] >= 1, classes
    res = run_cli("snapshots", "-r", "@cloud", "--config", cfg, "--json")
    assert res.code == 0 and len(res.json()) == 2
