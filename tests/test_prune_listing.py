"""A prune's first look is one listing of the whole repository (docs/format.md §12.3 step 1):
one LIST where prefix by prefix took four, on SeaweedFS and on a local directory, counted by
the same meter that fills `--json`; what it does among objects that are not the repository's
(a repository at the top of a shared bucket or disk); and the dry run's estimate of it."""

from __future__ import annotations

import os
import shutil

import pytest

from cairn.app import knownkeys
from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.repo.listing import FOREIGN_LIMIT
from tests.test_bill import make_tree


def store(url: str):  # type: ignore[no-untyped-def]
    return wrap_backend(backend_for(url, StoreOptions()), StoreOptions())[0]


def backed_up(tmp_path, url, run_cli):  # type: ignore[no-untyped-def]
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", url, "--pack-size", "128K").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    return src


def prune_requests(run_cli, url: str, *args: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    res = run_cli("prune", "--repo", url, "--json", *args)
    assert res.code == 0, res.err
    return res.json()["requests"]  # type: ignore[no-any-return]


def keys_listings(repo_url: str) -> int:
    """The listings of keys/ an opening makes here: none on S3, where this host has opened the
    repository before and knows its key file (docs/format.md §11.7); one from a directory."""
    return 0 if repo_url.startswith("s3:") else 1


@pytest.mark.parametrize("repo_url", ["local", "s3"], indirect=True)
def test_a_prune_with_nothing_to_do_makes_two_listings(tmp_path, repo_url, run_cli):
    """The keys' (opening the repository), then one of everything: objects of other names
    before and after the repository's own are skipped, and none after its last prefix makes
    the listing go on."""
    backed_up(tmp_path, repo_url, run_cli)
    s = store(repo_url)
    s.write("README", b"not the repository's\n")
    s.write("zzz/after", b"after snapshots/\n")
    dry = prune_requests(run_cli, repo_url, "--dry-run")
    real = prune_requests(run_cli, repo_url)
    # the keys' (on S3 this host knows its key file: docs/format.md §11.7), then one of all
    assert real["list"] == keys_listings(repo_url) + 1
    if repo_url.startswith("s3:"):  # a key file and the config: the rest is on this host
        assert real["get"] == 2
    assert {k: dry[k] for k in ("list", "get", "put", "delete")} == {
        k: real[k] for k in ("list", "get", "put", "delete")
    }


def test_a_dry_run_counts_the_keys_listing_the_prune_will_make(tmp_path, s3_url, run_cli):
    """A dry run that is the first opening from this host lists the keys; the prune after it
    does not (the host knows its key file now: docs/format.md §11.7), and the dry run says so."""
    backed_up(tmp_path, s3_url, run_cli)
    shutil.rmtree(tmp_path / "cache" / knownkeys.DIRECTORY)  # CAIRN_CACHE_DIR: tests/conftest.py
    dry = prune_requests(run_cli, s3_url, "--dry-run")
    real = prune_requests(run_cli, s3_url)
    assert real["list"] == 1  # the one listing of everything
    assert {k: dry[k] for k in ("list", "get", "put", "delete")} == {
        k: real[k] for k in ("list", "get", "put", "delete")
    }


@pytest.mark.parametrize("repo_url", ["local", "s3"], indirect=True)
def test_among_many_other_objects_the_prune_lists_prefix_by_prefix(tmp_path, repo_url, run_cli):
    """A repository at the top of a bucket or disk that holds other things: the one listing
    stops after FOREIGN_LIMIT names not of the repository, and the prune lists its own
    prefixes instead; it still works, and its dry run counts the same requests."""
    src = backed_up(tmp_path, repo_url, run_cli)
    s = store(repo_url)
    for i in range(FOREIGN_LIMIT + 1):  # before data/ in key order
        s.write(f"a-photos/{i:05d}", b"x")
    assert run_cli("forget", "--repo", repo_url, "latest").code == 0
    assert run_cli("backup", "--repo", repo_url, src / "d0").code == 0
    dry = prune_requests(run_cli, repo_url, "--dry-run")
    real = prune_requests(run_cli, repo_url)
    # the keys' (not on S3); the one listing's two pages, stopped; locks, snapshots, index
    # objects, packs; and, as it deletes, a second look at the locks, snapshots and index objects
    assert real["list"] == keys_listings(repo_url) + 2 + 4 + 3
    assert {k: dry[k] for k in ("list", "get", "put", "delete")} == {
        k: real[k] for k in ("list", "get", "put", "delete")
    }
    assert run_cli("check", "--repo", repo_url, "--read-data").code == 0
    assert sum(1 for name, _ in s.list("a-photos/")) == FOREIGN_LIMIT + 1  # left alone
    out = tmp_path / "out"
    assert run_cli("restore", "--repo", repo_url, "latest", "--target", out).code == 0
    restored = out / os.path.relpath(src / "d0", "/")
    assert sorted(p.name for p in restored.iterdir()) == sorted(
        p.name for p in (src / "d0").iterdir()
    )
