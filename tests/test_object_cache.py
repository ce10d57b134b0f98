"""The local copies of index objects, snapshots and tree packs kept for an object store
(cairn.repo.objectcache, docs/format.md §11.6), on the real S3 server: what they save, and that
a damaged, stale or unwritable copy never changes what a command sees."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cairn.repo import layout
from cairn.repo.objectcache import FETCH_BYTES, GRACE, ObjectCache
from cairn.storage.local import LocalStorage
from cairn.storage.s3config import S3Location
from tests.test_bill import make_tree
from tests.test_month import NamedLog, change, logged
from tests.test_prune_trees import tree_packs


def copies(root: Path) -> Path:
    """The one repository's copies under the cache directory ``root``."""
    (found,) = root.glob("*/objects")
    return found


def gets(log: NamedLog, prefix: str) -> int:
    return log.by_prefix[("get", prefix)]


def backups(tmp_path, s3_url, run_cli, days: int = 3):  # type: ignore[no-untyped-def]
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    for _ in range(days):
        change(src, 2)
        assert run_cli("backup", "--repo", s3_url, src).code == 0
    return src


def test_a_backup_keeps_copies_and_a_prune_that_removes_nothing_reads_none(
    tmp_path, s3_url, run_cli
):
    backups(tmp_path, s3_url, run_cli)
    kept = copies(tmp_path / "cache")
    trees, _ = tree_packs(s3_url)
    for prefix in ("index", "snapshots"):
        assert len(list((kept / prefix).iterdir())) == 3, prefix  # one per backup
    assert {p.relative_to(kept).as_posix() for p in (kept / "data").rglob("*/*")} >= trees
    for path in kept.rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), path
    log = NamedLog()
    dry = logged(run_cli, log, "prune", "--repo", s3_url, "--dry-run", "--json").json()
    assert (gets(log, "index"), gets(log, "snapshots"), gets(log, "data")) == (0, 0, 0)
    assert (log.kinds["get"], dry["requests"]["get"]) == (2, 2)  # a key file, the config
    log = NamedLog()
    done = logged(run_cli, log, "prune", "--repo", s3_url, "--json").json()
    assert done["packs_deleted"] + done["packs_repacked"] == 0
    assert (gets(log, "index"), gets(log, "snapshots"), gets(log, "data")) == (0, 0, 0)
    assert done["requests"]["get"] == dry["requests"]["get"] == log.kinds["get"]


def test_another_host_fetches_each_tree_pack_once_in_ranges(
    tmp_path, s3_url, s3_env, run_cli, monkeypatch
):
    backups(tmp_path, s3_url, run_cli)
    trees, _ = tree_packs(s3_url)
    loc = S3Location.parse(s3_url)
    sizes = {
        name: s3_env.client().head_object(Bucket=loc.bucket, Key=loc.prefix + name)["ContentLength"]
        for name in trees
    }
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "other-host"))
    log = NamedLog()
    dry = logged(run_cli, log, "prune", "--repo", s3_url, "--dry-run", "--json").json()
    ranges = sum(-(-size // FETCH_BYTES) for size in sizes.values())
    assert gets(log, "data") == ranges == len(trees)  # small packs: one range each
    assert (gets(log, "index"), gets(log, "snapshots")) == (3, 3)
    # what the dry run counted is what it read of the store
    assert dry["requests"]["get"] == log.kinds["get"]
    kept = copies(tmp_path / "other-host")
    assert {p.relative_to(kept).as_posix() for p in (kept / "data").rglob("*/*")} == trees
    log = NamedLog()
    logged(run_cli, log, "prune", "--repo", s3_url, "--dry-run")
    assert (gets(log, "index"), gets(log, "snapshots"), gets(log, "data")) == (0, 0, 0)


def test_a_damaged_copy_is_dropped_and_the_store_read(tmp_path, s3_url, run_cli):
    src = backups(tmp_path, s3_url, run_cli, days=1)
    kept = copies(tmp_path / "cache")
    (index,) = (kept / "index").iterdir()
    (tree,) = [p for p in (kept / "data").rglob("*") if p.is_file()]
    for path in (index, tree):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    log = NamedLog()
    res = logged(run_cli, log, "restore", "--repo", s3_url, "latest", "--target", tmp_path / "out")
    assert "did not match its name" in res.err
    assert gets(log, "index") == 1  # the damaged copy's object, from the store
    assert gets(log, "data") >= 1  # its trees too (a restore reads them blob by blob)
    for f in src.rglob("*"):
        if f.is_file():
            assert (tmp_path / "out" / f.relative_to("/")).read_bytes() == f.read_bytes()
    assert index.exists()  # kept again, as the store has it (the tree pack: on its next fetch)
    log = NamedLog()
    logged(run_cli, log, "snapshots", "--repo", s3_url)
    logged(run_cli, log, "prune", "--repo", s3_url, "--dry-run")
    assert (gets(log, "index"), gets(log, "data")) == (0, 1)  # the tree pack, fetched again
    assert tree.exists()


def test_copies_of_objects_gone_from_the_store_are_dropped(tmp_path, s3_url, run_cli, monkeypatch):
    src = backups(tmp_path, s3_url, run_cli)
    kept = copies(tmp_path / "cache")
    before = {p.name for p in (kept / "snapshots").iterdir()}
    # another host forgets a snapshot and prunes: it deletes objects this host has copies of
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "other-host"))
    assert run_cli("forget", "--repo", s3_url, "--keep-last", "1", "--prune").code == 0
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "cache"))
    # copies younger than the grace period stay (another command may have just written them)
    assert run_cli("snapshots", "--repo", s3_url).code == 0
    assert {p.name for p in (kept / "snapshots").iterdir()} == before
    old = time.time() - GRACE - 60
    for path in kept.rglob("*"):
        os.utime(path, (old, old))
    assert run_cli("prune", "--repo", s3_url, "--dry-run").code == 0
    left = {p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file()}
    trees, _ = tree_packs(s3_url)
    assert {n for n in left if n.startswith("data/")} == trees
    assert len([n for n in left if n.startswith("snapshots/")]) == 1
    assert len([n for n in left if n.startswith("index/")]) == 1  # the prune's new index
    # an object deleted through this host's cache goes with its copy at once
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    assert len(list((kept / "snapshots").iterdir())) == 2
    assert run_cli("forget", "--repo", s3_url, "--keep-last", "1").code == 0
    assert len(list((kept / "snapshots").iterdir())) == 1


def test_check_reads_the_store_not_the_copies(tmp_path, s3_url, s3_env, run_cli):
    backups(tmp_path, s3_url, run_cli, days=1)
    loc = S3Location.parse(s3_url)
    client = s3_env.client()
    (index,) = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=loc.bucket, Prefix=loc.prefix + "index/")["Contents"]
    ]
    body = bytearray(client.get_object(Bucket=loc.bucket, Key=index)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    client.put_object(Bucket=loc.bucket, Key=index, Body=bytes(body))
    # the copy here is intact, and what other commands read
    assert run_cli("ls", "--repo", s3_url, "latest").code == 0
    res = run_cli("check", "--repo", s3_url)
    assert res.code != 0
    assert "index/" in res.out + res.err


def test_no_cache_keeps_no_copies(tmp_path, s3_url, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url).code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--no-cache").code == 0
    assert not list((tmp_path / "cache").glob("*/objects"))


def test_a_copy_that_cannot_be_written_is_not_an_error(tmp_path):
    store = LocalStorage(str(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"a file where the directory would go")
    notices: list[str] = []
    cache = ObjectCache(store, blocked / "objects", lambda obj, msg: notices.append(msg))
    data = b"an index object"
    name = layout.INDEX + __import__("blake3").blake3(data).hexdigest()
    cache.write(name, data)
    assert cache.read(name) == data == store.read(name)
    assert len(notices) == 1 and "not kept" in notices[0]
    assert not cache.holds(name)


def test_a_copy_whose_name_does_not_match_is_never_kept(tmp_path):
    (tmp_path / "store").mkdir()
    store = LocalStorage(str(tmp_path / "store"))
    cache = ObjectCache(store, tmp_path / "objects")
    name = layout.INDEX + "0" * 64
    cache.write(name, b"not what the name says")
    assert not (tmp_path / "objects" / name).exists()
    assert cache.read(name) == b"not what the name says"
    assert not cache.holds(name)
    # names that are not content-addressed are passed through, never kept
    cache.write(layout.CONFIG, b"config")
    cache.write("locks/" + "1" * 64, b"lock")
    assert not any(p.is_file() for p in (tmp_path / "objects").rglob("*"))
    assert not cache.fetch("../escape", 10)  # refused without a read
