"""A repository whose store was tampered with: a config whose id is not an id, symbolic links
inside a local repository, and stray objects under data/. No command may touch anything outside
the repository (or the cache), crash, or change the repository; each problem is one line."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest

from cairn.app.context import RepoSpec, Session
from cairn.app.passwords import PasswordSource
from cairn.core.errors import RepositoryError, StorageError
from cairn.repo import layout
from cairn.repo.config import RepoConfig
from cairn.storage.local import LocalStorage
from tests.craft import create_repo, listing, open_repo, repo_listing


def one_line_error(res) -> str:  # type: ignore[no-untyped-def]
    assert res.code != 0 and "Traceback" not in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    return res.err


def rewrite_config(repo_dir: Path, **changes: object) -> None:
    """Replaces the config with one holding ``changes``, sealed with the repository's own key
    (what a holder of the password could do)."""
    repo = open_repo(repo_dir, load_index=False)
    doc = msgpack.unpackb(repo.unseal(layout.CONFIG, repo.storage.read(layout.CONFIG)))
    doc.update(changes)
    sealed = repo.seal(layout.CONFIG, msgpack.packb(doc))
    (repo_dir / layout.CONFIG).unlink()
    repo.storage.write(layout.CONFIG, sealed)


# ---------------------------------------------------------------------- the repository id
@pytest.mark.parametrize("bad_id", ["../../escaped", "/tmp/cairn-escaped-cache", "", "AB" * 16, 7])
def test_a_config_whose_id_is_not_an_id_is_refused(tmp_path, run_cli, bad_id):
    repo = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    rewrite_config(repo, id=bad_id)
    before_tree = listing(tmp_path, exclude=[tmp_path / "cache"])
    before_repo = repo_listing(repo)
    for args in (["backup", src], ["snapshots"], ["check"]):
        err = one_line_error(run_cli(*args, "--repo", repo))
        assert "repository id" in err and "32 lowercase hex" in err
    assert repo_listing(repo) == before_repo
    assert listing(tmp_path, exclude=[tmp_path / "cache"]) == before_tree
    assert not Path("/tmp/cairn-escaped-cache").exists()
    assert not list((tmp_path / "cache").glob("*/files.sqlite"))


def test_the_cache_directory_takes_only_a_repository_id(tmp_path):
    repo = open_repo(create_repo(tmp_path / "repo"), load_index=False)
    spec = RepoSpec(
        url=str(tmp_path / "repo"), password=PasswordSource(), cache_dir=str(tmp_path / "c")
    )
    session = Session(spec, repo, None)  # type: ignore[arg-type]
    assert session.cache_dir == tmp_path / "c" / repo.config.id
    for bad in ("../outside", str(tmp_path / "outside"), "x" * 32):
        repo.config = RepoConfig(1, bad, repo.config.chunker)
        with pytest.raises(RepositoryError, match="not a valid cache directory name"):
            _ = session.cache_dir
    assert not (tmp_path / "outside").exists()
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(
        ["CACHEDIR.TAG", repo_id(tmp_path)]
    )


def repo_id(tmp_path: Path) -> str:
    return open_repo(tmp_path / "repo", load_index=False).config.id


# ---------------------------------------------------------------------- symbolic links
def _hex_files(root: Path) -> list[Path]:
    """A directory laid out like data/: hex-named files, as a prune would take for packs."""
    made = []
    for first in ("ab", "cd"):
        (root / first).mkdir(parents=True)
        for i in range(2):
            p = root / first / (first + f"{i:02x}" * 31)
            p.write_bytes(b"precious, not a pack\n")
            made.append(p)
    return made


def _backed_up(tmp_path: Path, run_cli) -> Path:  # type: ignore[no-untyped-def]
    repo = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("some data\n")
    assert run_cli("backup", "--repo", repo, src).code == 0
    return repo


LINKS = ["data", "data/ab", "object"]


@pytest.mark.parametrize("where", LINKS)
def test_prune_never_deletes_through_a_symbolic_link(tmp_path, run_cli, where):
    """With no snapshot every pack is unused: a prune that followed the link would delete every
    hex-named file below its target."""
    repo = create_repo(tmp_path / "repo")
    victim = tmp_path / "victim"
    _hex_files(victim)
    if where == "data":
        (repo / "data").symlink_to(victim)
    elif where == "data/ab":
        (repo / "data").mkdir()
        (repo / "data" / "ab").symlink_to(victim / "ab")
    else:
        target = next((victim / "ab").iterdir())
        (repo / "data" / "ab").mkdir(parents=True)
        (repo / "data" / "ab" / target.name).symlink_to(target)
    outside = listing(victim)
    before = objects(repo)
    for args in (["prune"], ["prune", "--dry-run"], ["check"], ["repair", "index"], ["cost"]):
        err = one_line_error(run_cli(*args, "--repo", repo))
        assert "is a symbolic link" in err and "never follows a link" in err
    assert listing(victim) == outside
    assert objects(repo) == before


def objects(repo: Path) -> dict[str, tuple[int, int, int]]:
    """The repository's files and directories, but the lock directory (created on first use)."""
    return {k: v for k, v in repo_listing(repo).items() if k != "locks"}


@pytest.mark.parametrize("where", ["data", "data/ab"])
def test_backup_never_writes_through_a_symbolic_link(tmp_path, run_cli, where):
    repo = _backed_up(tmp_path, run_cli)
    victim = tmp_path / "victim"
    victim.mkdir()
    moved = tmp_path / "moved-data"
    (repo / "data").rename(moved)
    if where == "data":
        (repo / "data").symlink_to(victim)
    else:  # every directory a new pack could go to
        (repo / "data").mkdir()
        for i in range(256):
            (repo / "data" / f"{i:02x}").symlink_to(victim)
    src = tmp_path / "src2"
    src.mkdir()
    (src / "new.bin").write_bytes(b"new data " * 1000)
    err = one_line_error(run_cli("backup", "--repo", repo, src, "--no-cache"))
    assert "is a symbolic link" in err
    assert list(victim.iterdir()) == []


def test_reading_an_object_never_follows_a_symbolic_link(tmp_path):
    storage = LocalStorage(create_repo(tmp_path / "repo"))
    (tmp_path / "outside").write_bytes(b"secret")
    (tmp_path / "repo" / "data" / "ab").mkdir(parents=True)
    (tmp_path / "repo" / "data" / "ab" / "x").symlink_to(tmp_path / "outside")
    for op in (lambda: storage.read("data/ab/x"), lambda: storage.read("data/ab/x", 0, 3)):
        with pytest.raises(StorageError, match="is a symbolic link"):
            op()
    with pytest.raises(StorageError, match="is a symbolic link"):
        storage.stat("data/ab/x")
    storage.delete("data/ab/x")  # the link itself, never its target
    assert (tmp_path / "outside").read_bytes() == b"secret"


def test_the_repository_directory_itself_may_be_a_symbolic_link(tmp_path, run_cli):
    repo = _backed_up(tmp_path, run_cli)
    link = tmp_path / "link-to-repo"
    link.symlink_to(repo)
    for args in (["check", "--read-data"], ["prune"], ["snapshots"]):
        res = run_cli(*args, "--repo", link)
        assert res.code == 0, res.err


# ---------------------------------------------------------------------- strays under data/
STRAYS = ["data/README", "data/.DS_Store", "data/zz/xyz", "data/ab/" + "cd" * 32, "data/ab/ab12"]


@pytest.mark.parametrize("snapshot", [False, True], ids=["empty", "with-snapshot"])
def test_stray_files_under_data_are_ignored_with_a_warning(tmp_path, run_cli, snapshot):
    repo = _backed_up(tmp_path, run_cli) if snapshot else create_repo(tmp_path / "repo")
    for name in STRAYS:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("not a pack\n")
    priced = ["cost", "--provider", "aws"]  # a local directory's cost reads its index then
    for args in (["check"], ["repair", "index"], priced, ["prune", "--dry-run"], ["prune"]):
        res = run_cli(*args, "--repo", repo)
        assert res.code == 0 and "Traceback" not in res.err, (args, res.err)
        shown = res.out + res.err
        for name in STRAYS:
            assert f"{name}: not a pack" in shown, (args, name, shown)
    for name in STRAYS:
        assert (repo / name).read_text() == "not a pack\n"
    assert run_cli("check", "--read-data", "--repo", repo).code == 0


def test_a_fifo_under_an_object_name_is_refused_not_waited_for(tmp_path):
    storage = LocalStorage(create_repo(tmp_path / "repo"))
    (tmp_path / "repo" / "data" / "ab").mkdir(parents=True)
    os.mkfifo(tmp_path / "repo" / "data" / "ab" / "x")
    for op in (lambda: storage.read("data/ab/x"), lambda: storage.read("data/ab/x", 0, 3)):
        with pytest.raises(StorageError, match="neither a file nor a directory"):
            op()
    with pytest.raises(StorageError, match="neither a file nor a directory"):
        list(storage.list("data/"))
