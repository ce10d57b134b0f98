"""cairn key add --user/--host, key export and key import: the master keys in a key file kept
apart, brought back to a repository whose key files are all lost (local and S3)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.crypto.keys import parse_key_file
from cairn.repo.repository import Repository
from cairn.storage.s3 import S3Storage
from tests.conftest import FAST_KDF, PASSWORD


@pytest.fixture(params=["local", "s3"])
def url(request: pytest.FixtureRequest, tmp_path: Path, run_cli) -> str:  # type: ignore[no-untyped-def]
    """A repository (cheap KDF) holding one snapshot."""
    if request.param == "local":
        url = str(tmp_path / "repo")
        Path(url).mkdir()
    else:
        url = str(request.getfixturevalue("s3_url"))
    backend = backend_for(url, StoreOptions())
    if isinstance(backend, S3Storage):
        backend.create_bucket()
    Repository.create(wrap_backend(backend, StoreOptions())[0], PASSWORD.encode(), kdf=FAST_KDF)
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_bytes(os.urandom(50_000))
    assert run_cli("backup", "--repo", url, src).code == 0
    return url


def store(url: str):  # type: ignore[no-untyped-def]
    return wrap_backend(backend_for(url, StoreOptions()), StoreOptions())[0]


def objects(url: str) -> dict[str, int]:
    return dict(store(url).list(""))


def test_key_add_records_user_and_host(url: str, run_cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CAIRN_NEW_PASSWORD", "for alice")
    res = run_cli("key", "add", "-r", url, "--user", "alice", "--host", "laptop", "--json")
    assert res.code == 0, res.err
    new = res.json()["id"]
    keys = {k["id"]: k for k in run_cli("key", "list", "-r", url, "--json").json()}
    assert (keys[new]["username"], keys[new]["host"]) == ("alice", "laptop")
    assert "laptop" in run_cli("key", "list", "-r", url).out
    before = objects(url)
    res = run_cli("key", "add", "-r", url, "--host", "h" * 256)
    assert res.code != 0 and res.err.count("\n") == 1 and "--host is longer than 255" in res.err
    assert objects(url) == before


def test_export_then_import_into_a_repository_without_keys(
    url: str, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    pw = tmp_path / "safe-pw"
    pw.write_text("kept in the safe\n")
    exported = tmp_path / "repo.key"
    before = objects(url)
    res = run_cli(
        "key", "export", "-r", url, exported, "--new-password-file", pw, "--user", "safe",
        "--json",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert objects(url) == before  # nothing written to the repository
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    doc = json.loads(exported.read_bytes())
    assert parse_key_file(exported.read_bytes()).doc == doc and doc["username"] == "safe"
    res = run_cli("key", "export", "-r", url, exported, "--new-password-file", pw)
    assert res.code != 0 and "exists" in res.err

    # every key file lost: the repository no longer opens
    s = store(url)
    for name, _ in list(s.list("keys/")):
        s.delete(name)
    assert run_cli("snapshots", "-r", url).code != 0
    # the wrong password for the exported file: refused, nothing written
    res = run_cli("key", "import", "-r", url, exported)
    assert res.code != 0 and f"does not open {exported}" in res.err
    assert not list(store(url).list("keys/"))
    res = run_cli("key", "import", "-r", url, exported, "--password-file", pw, "--json")
    assert res.code == 0, res.err
    said = res.json()
    assert said == {"id": said["id"], "added": True, "requests": said["requests"]}
    assert said["requests"]["put"] == 1  # the key file
    res = run_cli("snapshots", "-r", url, "--password-file", pw, "--json")
    assert res.code == 0 and len(res.json()) == 1
    assert run_cli("check", "-r", url, "--password-file", pw, "--read-data").code == 0
    res = run_cli("key", "import", "-r", url, exported, "--password-file", pw)
    assert res.code == 0 and "holds key" in res.out


def test_import_refuses_another_repositorys_key(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    repos = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        Repository.create(store(str(tmp_path / name)), PASSWORD.encode(), kdf=FAST_KDF)
        repos.append(str(tmp_path / name))
    pw = tmp_path / "pw"
    pw.write_text("other\n")
    key = tmp_path / "one.key"
    assert run_cli("key", "export", "-r", repos[0], key, "--new-password-file", pw).code == 0
    before = objects(repos[1])
    res = run_cli("key", "import", "-r", repos[1], key, "--password-file", pw)
    assert res.code != 0 and res.err.count("\n") == 1
    assert "holds the keys of another repository" in res.err
    assert objects(repos[1]) == before
    (tmp_path / "bad.key").write_text("{}")
    res = run_cli("key", "import", "-r", repos[1], tmp_path / "bad.key", "--password-file", pw)
    assert res.code != 0 and "malformed key file" in res.err
