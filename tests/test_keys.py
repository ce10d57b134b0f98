"""cairn key list|add|remove|passwd: several passwords for one repository, on the local backend
and on the real SeaweedFS S3 server. Only keys/ objects ever change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.core.errors import WrongPassword
from cairn.repo.repository import Repository
from cairn.storage.s3 import S3Storage
from tests.conftest import FAST_KDF, PASSWORD
from tests.verify import verify_repository

SECOND = "second password, rather long"
THIRD = "third"


@pytest.fixture(params=["local", "s3"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "repo")
    return str(request.getfixturevalue("s3_url"))


@pytest.fixture
def repo_with_data(url: str, tmp_path: Path, run_cli) -> str:  # type: ignore[no-untyped-def]
    """A repository (cheap KDF) holding one snapshot."""
    backend = backend_for(url, StoreOptions())
    if isinstance(backend, S3Storage):
        backend.create_bucket()
    else:
        Path(url).mkdir(parents=True)
    Repository.create(wrap_backend(backend, StoreOptions())[0], PASSWORD.encode(), kdf=FAST_KDF)
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_bytes(os.urandom(100_000))
    ok(run_cli("backup", "--repo", url, src))
    return url


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def open_repo(url: str, password: str) -> Repository:
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    return Repository.open(storage, password.encode())


def listing(url: str) -> dict[str, int]:
    """Every object but the key files and the commands' operation records, with its size."""
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    return {n: size for n, size in storage.list("") if not n.startswith(("keys/", "operations/"))}


def keys(run_cli, url: str, password: str = PASSWORD) -> list[dict]:  # type: ignore[no-untyped-def]
    res = ok(run_cli("key", "list", "--repo", url, "--json", env_password=password))
    return res.json()


@pytest.fixture
def cli(run_cli, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """run_cli with the repository password (and optionally the new one) chosen per call."""

    def run(*args, env_password: str = PASSWORD, new: str | None = None):  # type: ignore[no-untyped-def]
        monkeypatch.setenv("CAIRN_PASSWORD", env_password)
        if new is None:
            monkeypatch.delenv("CAIRN_NEW_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("CAIRN_NEW_PASSWORD", new)
        return run_cli(*args)

    return run


def test_add_list_and_open_with_every_password(repo_with_data, cli, tmp_path):
    url = repo_with_data
    before = listing(url)
    (first,) = keys(cli, url)
    assert first["current"] is True and first["error"] is None
    assert first["kdf"]["memory_cost"] == FAST_KDF.memory_cost

    second = ok(cli("key", "add", "--repo", url, "--json", new=SECOND)).json()["id"]
    pw_file = tmp_path / "pw"
    pw_file.write_text(f"{THIRD}\nignored second line\n")
    res = ok(cli("key", "add", "--repo", url, "--new-password-file", pw_file))
    assert res.out.startswith("added key ")
    third = res.out.split()[-1]

    listed = keys(cli, url)
    assert [k["id"][:8] for k in listed] == [first["id"][:8], second[:8], third]  # oldest first
    assert [k["current"] for k in listed] == [True, False, False]
    for k in listed:
        assert k["host"] and k["username"] and k["created"]
    # each password opens the repository, and `key list` marks the key it used
    for password, expected in ((SECOND, second[:8]), (THIRD, third)):
        (current,) = [k["id"][:8] for k in keys(cli, url, password) if k["current"]]
        assert current == expected
        assert open_repo(url, password).key == open_repo(url, PASSWORD).key
    human = ok(cli("key", "list", "--repo", url, env_password=THIRD)).out
    assert f"*{third}" in human and f" {first['id'][:8]}" in human and "3 keys" in human
    assert listing(url) == before  # adding passwords rewrote nothing else
    assert verify_repository(open_repo(url, THIRD))["snapshots"] == 1


def test_remove_by_prefix_refuses_the_last_and_the_current_key(repo_with_data, cli):
    url = repo_with_data
    before = listing(url)
    (first,) = keys(cli, url)
    res = cli("key", "remove", "--repo", url, first["id"][:6])
    assert res.code == 1 and "refusing to remove the last key" in res.err

    second = ok(cli("key", "add", "--repo", url, "--json", new=SECOND)).json()["id"]
    res = cli("key", "remove", "--repo", url, first["id"][:6])  # opened with the first
    assert res.code == 1 and "the one in use" in res.err
    assert len(keys(cli, url)) == 2

    res = ok(cli("key", "remove", "--repo", url, first["id"][:6], env_password=SECOND))
    assert res.out.strip() == f"removed key {first['id'][:8]}"
    assert [k["id"] for k in keys(cli, url, SECOND)] == [second]
    with pytest.raises(WrongPassword):
        open_repo(url, PASSWORD)
    res = cli("snapshots", "--repo", url)
    assert res.code == 1 and "wrong password" in res.err
    res = cli("key", "remove", "--repo", url, second, env_password=SECOND)
    assert res.code == 1 and "last key" in res.err
    assert listing(url) == before


def test_bad_key_references(repo_with_data, cli):
    url = repo_with_data
    res = cli("key", "remove", "--repo", url, "0" * 64)
    assert res.code == 1 and "no key with id" in res.err
    res = cli("key", "remove", "--repo", url, "not-hex")
    assert res.code == 2 and "not a key id" in res.err
    assert len(keys(cli, url)) == 1


def test_passwd_replaces_the_current_password_only(repo_with_data, cli):
    url = repo_with_data
    before = listing(url)
    ok(cli("key", "add", "--repo", url, new=SECOND))
    (first, second) = keys(cli, url)
    doc = ok(cli("key", "passwd", "--repo", url, "--json", new=THIRD)).json()
    assert doc["removed"] == first["id"]
    after = keys(cli, url, THIRD)
    assert {k["id"] for k in after} == {second["id"], doc["id"]}
    assert [k["id"] for k in after if k["current"]] == [doc["id"]]
    with pytest.raises(WrongPassword):
        open_repo(url, PASSWORD)  # the old password no longer opens
    res = cli("snapshots", "--repo", url)
    assert res.code == 1 and "wrong password" in res.err
    assert open_repo(url, SECOND).key == open_repo(url, THIRD).key  # the other one still does
    assert listing(url) == before
    assert verify_repository(open_repo(url, THIRD))["snapshots"] == 1


def test_new_password_sources(tmp_path, cli, monkeypatch):
    url = str(tmp_path / "repo")
    Path(url).mkdir()
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    Repository.create(storage, PASSWORD.encode(), kdf=FAST_KDF)
    empty = tmp_path / "empty"
    empty.write_text("")
    res = cli("key", "add", "--repo", url, "--new-password-file", empty)
    assert res.code == 2 and "is empty" in res.err
    res = cli("key", "add", "--repo", url, new="")
    assert res.code == 2 and "CAIRN_NEW_PASSWORD is empty" in res.err
    res = cli("key", "passwd", "--repo", url)  # no source, no terminal
    assert res.code == 2 and "no new password" in res.err

    # on a terminal: asked twice, and both answers must match
    class Tty:
        def isatty(self) -> bool:
            return True

    answers: list[str] = []
    monkeypatch.setattr("cairn.app.passwords.sys.stdin", Tty())
    monkeypatch.setattr("cairn.app.passwords.getpass.getpass", lambda prompt: answers.pop(0))
    answers[:] = [SECOND, "typo"]
    res = cli("key", "add", "--repo", url)
    assert res.code == 2 and "do not match" in res.err
    assert len(keys(cli, url)) == 1
    answers[:] = [SECOND, SECOND]
    ok(cli("key", "add", "--repo", url))
    assert len(keys(cli, url, SECOND)) == 2


def test_a_damaged_key_file_is_listed_and_can_be_removed(tmp_path, cli):
    url = str(tmp_path / "repo")
    Path(url).mkdir()
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    Repository.create(storage, PASSWORD.encode(), kdf=FAST_KDF)
    bad = "f" * 64
    (Path(url) / "keys" / bad).write_bytes(b"{not json")
    listed = {k["id"]: k for k in keys(cli, url)}
    assert len(listed) == 2 and listed[bad]["error"].startswith("malformed key file")
    assert "damaged: malformed key file" in ok(cli("key", "list", "--repo", url)).out
    ok(cli("key", "remove", "--repo", url, "ffff"))
    assert [k["error"] for k in keys(cli, url)] == [None]
