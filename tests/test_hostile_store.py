"""A repository whose store was tampered with: a config whose id is not an id, symbolic links
inside a local repository, and stray objects under data/. No command may touch anything outside
the repository (or the cache), crash, or change the repository; each problem is one line."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from cairn.app.context import RepoSpec, Session
from cairn.app.passwords import PasswordSource
from cairn.core.errors import RepositoryError
from cairn.repo import layout
from cairn.repo.config import RepoConfig
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
