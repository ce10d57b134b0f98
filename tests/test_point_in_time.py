"""Point-in-time reads and `repair undelete` on a real versioned bucket (SeaweedFS).

The attack drill: backups into a bucket with versioning (or with Object Lock, made by
`init --object-lock`), then an attacker with the backup's own credentials deletes every object
and writes garbage over config, a key, an index object and a pack, and adds a bogus snapshot
(and, under Object Lock, tries to delete every version by its id). `--as-of` reads the repository of before the attack,
and `repair undelete` makes it the current one again, adding versions only.

SeaweedFS stamps versions to the second, so the tests sleep just over a second on each side
of the time they note: what they test is the order of events, not their timing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cairn.core.errors import EXIT_USAGE, ObjectMissing
from cairn.repo.locks import Locks, new_lock
from cairn.storage.s3 import S3Storage
from cairn.storage.s3config import S3Location
from cairn.storage.s3versions import ORDER_KEY, entries_in_order
from cairn.storage.versions import AsOfStorage
from tests.test_mount import Mounted
from tests.treecmp import describe, diff
from tests.verify import open_url, restored_diff

Run = Callable[..., Any]
TICK = 1.1  # just over the store's resolution of LastModified


@pytest.fixture
def bucket(s3_env) -> str:  # type: ignore[no-untyped-def]
    """A fresh bucket of this test's own, with versioning enabled."""
    name = f"asof-{os.urandom(6).hex()}"
    client = s3_env.client()
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _all_versions(client, bucket: str) -> set[tuple[str, str, bool]]:  # type: ignore[no-untyped-def]
    """Every (key, version id, is a delete marker) of the bucket."""
    out: set[tuple[str, str, bool]] = set()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        out |= {(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])}
        out |= {(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers", [])}
    return out


def _current_keys(client, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def _make_tree(root: Path, seed: int) -> None:
    (root / "docs" / "deep").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "notes.txt").write_bytes(f"notes {seed}\n".encode() * 500)
    (root / "docs" / "deep" / "random.bin").write_bytes(os.urandom(1_500_000))
    (root / f"only-{seed}.dat").write_bytes(os.urandom(40_000 + seed))
    link = root / "link"
    if not link.is_symlink():
        link.symlink_to("docs/notes.txt")
    os.chmod(root / "docs" / "notes.txt", 0o640)
    os.utime(root / "docs" / "notes.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000 * 10**9))


def _now_after_tick() -> datetime:
    time.sleep(TICK)
    when = datetime.now(UTC)
    time.sleep(TICK)
    return when


def _iso(when: datetime) -> str:
    return when.isoformat()


@pytest.mark.parametrize("object_lock", [False, True], ids=["versioned", "object-lock"])
def test_attack_drill(s3_env, tmp_path: Path, run_cli: Run, object_lock: bool) -> None:  # type: ignore[no-untyped-def]
    """With Object Lock (``init --object-lock`` creates the bucket with it), the attacker also
    tries to delete every version by its id, and cannot."""
    client = s3_env.client()
    bucket = f"drill-{os.urandom(6).hex()}"
    url = s3_env.url("repo", bucket=bucket)
    src = tmp_path / "src"
    if object_lock:
        res = run_cli("init", "--repo", url, "--pack-size", "1M", "--object-lock", "7")
    else:
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        res = run_cli("init", "--repo", url, "--pack-size", "1M")
    assert res.code == 0, res.err
    _make_tree(src, 1)
    first_tree = describe(src, atime=False)
    assert run_cli("backup", "--repo", url, src).code == 0
    _make_tree(src, 2)
    (src / "only-1.dat").unlink()
    second_tree = describe(src, atime=False)
    assert run_cli("backup", "--repo", url, src).code == 0
    listed = run_cli("snapshots", "--repo", url, "--json").json()
    ids = [s["id"] for s in listed]
    assert len(ids) == 2
    when = _now_after_tick()
    before_attack = _all_versions(client, bucket)

    # the attack, with the backup's own credentials
    keys = _current_keys(client, bucket)
    names = [k.removeprefix("repo/") for k in keys]
    index = next(n for n in names if n.startswith("index/"))
    key = next(n for n in names if n.startswith("keys/"))
    pack = next(n for n in names if n.startswith("data/"))
    for k in keys:
        client.delete_object(Bucket=bucket, Key=k)
    for name in ("config", key, index, pack):
        client.put_object(Bucket=bucket, Key=f"repo/{name}", Body=os.urandom(300))
    bogus = "snapshots/" + "ab" * 32
    client.put_object(Bucket=bucket, Key=f"repo/{bogus}", Body=b"not a snapshot")
    if object_lock:  # and the versions themselves: every one is locked
        refused = 0
        for name, version, marker in before_attack:
            if marker:
                continue
            with pytest.raises(client.exceptions.ClientError):
                client.delete_object(Bucket=bucket, Key=name, VersionId=version)
            refused += 1
        assert refused == sum(1 for _, _, marker in before_attack if not marker) > 0
        assert before_attack <= _all_versions(client, bucket)
    assert run_cli("snapshots", "--repo", url).code != 0  # the repository is gone now

    # reading the past writes nothing: not a lock, not a record
    attacked = _all_versions(client, bucket)
    past = run_cli("snapshots", "--repo", url, "--as-of", _iso(when), "--json")
    assert past.code == 0, past.err
    assert [s["id"] for s in past.json()] == ids
    for snap_id, tree in zip(ids, (first_tree, second_tree), strict=True):
        out = tmp_path / f"out-{snap_id[:8]}"
        res = run_cli(
            "restore", "--repo", url, "--as-of", _iso(when), f"{snap_id}:{src}", "--target", out
        )
        assert res.code == 0, res.err
        assert diff(tree, describe(out, atime=False)) == []
    changes = run_cli("diff", "--repo", url, "--as-of", _iso(when), ids[0], ids[1])
    assert changes.code == 0, changes.err
    assert "only-1.dat" in changes.out and "only-2.dat" in changes.out
    checked = run_cli("check", "--repo", url, "--as-of", _iso(when), "--read-data")
    assert checked.code == 0, checked.out + checked.err
    assert _all_versions(client, bucket) == attacked

    # undelete: a dry run changes nothing, then the real one adds versions only
    dry = run_cli("repair", "undelete", "--repo", url, "--as-of", _iso(when), "--dry-run")
    assert dry.code == 0, dry.err
    assert f"would hide {bogus}" in dry.out
    assert _all_versions(client, bucket) == attacked
    res = run_cli("repair", "undelete", "--repo", url, "--as-of", _iso(when), "--json")
    assert res.code == 0, res.err
    report = res.json()
    assert sorted(report["restored"]) == sorted(names)  # every object was deleted
    assert report["hidden"] == [bogus]
    assert report["counts"] == {"restored": len(names), "hidden": 1}
    # what it sent: the copies, the marker, its lock and record among the PUTs
    assert report["requests"]["put"] >= len(names) + 1 and report["requests"]["get"] > 0
    after = _all_versions(client, bucket)
    assert before_attack <= attacked <= after  # only additions, ever

    assert _current_keys(client, bucket) == sorted(
        [*keys, *(k for k in _current_keys(client, bucket) if k.startswith("repo/operations/"))]
    )
    check = run_cli("check", "--repo", url, "--read-data")
    assert check.code == 0, check.out + check.err
    assert [s["id"] for s in run_cli("snapshots", "--repo", url, "--json").json()] == ids
    out = tmp_path / "out-latest"
    assert run_cli("restore", "--repo", url, f"latest:{src}", "--target", out).code == 0
    assert restored_diff(src, out, url) == []

    again = run_cli("repair", "undelete", "--repo", url, "--as-of", _iso(when), "--json")
    assert again.code == 0, again.err
    assert again.json()["counts"] == {"restored": 0, "hidden": 0}
    assert again.json()["requests"]["get"] > 0  # it looked


def test_as_of_reads_the_repository_of_then(
    bucket: str, s3_env, tmp_path: Path, run_cli: Run
) -> None:  # type: ignore[no-untyped-def]
    """Between two backups, --as-of sees the first only; every reading command takes it."""
    url = s3_env.url("r", bucket=bucket)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"first\n")
    assert run_cli("init", "--repo", url).code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    when = _now_after_tick()
    (src / "a").write_bytes(b"second\n")
    assert run_cli("backup", "--repo", url, src).code == 0
    t = _iso(when)
    assert len(run_cli("snapshots", "--repo", url, "--json").json()) == 2
    assert len(run_cli("snapshots", "--repo", url, "--as-of", t, "--json").json()) == 1
    dumped = run_cli("dump", "--repo", url, "--as-of", t, "latest", f"{src}/a")
    assert dumped.code == 0, dumped.err
    assert dumped.out == "first\n"
    listing = run_cli("ls", "--repo", url, "--as-of", t, "latest", "--json")
    assert listing.code == 0, listing.err
    found = run_cli("find", "--repo", url, "--as-of", t, "a", "--json")
    assert found.code == 0, found.err
    assert run_cli("stats", "--repo", url, "--as-of", t).code == 0
    assert run_cli("cat", "--repo", url, "--as-of", t, "config").code == 0


def test_as_of_before_the_repository_existed(bucket: str, s3_env, run_cli: Run) -> None:  # type: ignore[no-untyped-def]
    url = s3_env.url("late", bucket=bucket)
    when = datetime.now(UTC)
    time.sleep(TICK)
    assert run_cli("init", "--repo", url).code == 0
    res = run_cli("snapshots", "--repo", url, "--as-of", _iso(when))
    assert res.code == 1
    assert "held no repository as of" in res.err and "it was created at" in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_as_of_needs_versions(tmp_path: Path, s3_url: str, run_cli: Run) -> None:
    local = tmp_path / "repo"
    assert run_cli("init", "--repo", local).code == 0
    res = run_cli("snapshots", "--repo", local, "--as-of", "2026-01-01")
    assert res.code == EXIT_USAGE
    assert "--as-of needs a store that keeps object versions" in res.err
    assert len(res.err.strip().splitlines()) == 1
    undo = run_cli("repair", "undelete", "--repo", local, "--as-of", "1d")
    assert undo.code == EXIT_USAGE and "keeps none" in undo.err
    assert run_cli("init", "--repo", s3_url).code == 0  # the shared bucket: no versioning
    res = run_cli("snapshots", "--repo", s3_url, "--as-of", "1d")
    assert res.code == EXIT_USAGE
    assert "has no versioning enabled" in res.err
    bad = run_cli("snapshots", "--repo", s3_url, "--as-of", "last tuesday")
    assert bad.code == EXIT_USAGE and "invalid time" in bad.err
    later = run_cli("snapshots", "--repo", s3_url, "--as-of", "2999-01-01T00:00:00Z")
    assert later.code == EXIT_USAGE and "is in the future" in later.err


def test_undelete_refuses_a_suspended_bucket(bucket: str, s3_env, run_cli: Run) -> None:  # type: ignore[no-untyped-def]
    url = s3_env.url("susp", bucket=bucket)
    assert run_cli("init", "--repo", url).code == 0
    when = _now_after_tick()
    client = s3_env.client()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    before = _all_versions(client, bucket)
    res = run_cli("repair", "undelete", "--repo", url, "--as-of", _iso(when))
    assert res.code == EXIT_USAGE and "not enabled" in res.err
    assert _all_versions(client, bucket) == before


def test_undelete_refuses_while_a_backup_holds_its_lock(
    bucket: str, s3_env, tmp_path: Path, run_cli: Run
) -> None:  # type: ignore[no-untyped-def]
    url = s3_env.url("busy", bucket=bucket)
    assert run_cli("init", "--repo", url).code == 0
    when = _now_after_tick()
    client = s3_env.client()
    client.put_object(Bucket=bucket, Key="busy/stray", Body=b"x")
    repo = open_url(url)
    lock = new_lock("backup")
    lock.pid = 1  # a live process, as a backup running elsewhere on this host would be
    Locks(repo).write(lock)
    before = _all_versions(client, bucket)
    res = run_cli("repair", "undelete", "--repo", url, "--as-of", _iso(when))
    assert res.code == 1 and "backup lock" in res.err and "alone" in res.err
    added = _all_versions(client, bucket) - before
    assert all(k.startswith("busy/locks/") for k, _, _ in added)  # its own lock, removed
    assert "busy/stray" in _current_keys(client, bucket)


def test_versions_come_in_the_store_order_within_one_second(bucket: str, s3_env) -> None:  # type: ignore[no-untyped-def]
    """Versions and delete markers of one second: the store's order, not the timestamps,
    says which is on top (boto3 parses them into two lists; cairn merges them back)."""
    client = s3_env.client()
    made = []
    for _ in range(2):
        made.append(client.put_object(Bucket=bucket, Key="p/k", Body=b"v")["VersionId"])
        made.append(client.delete_object(Bucket=bucket, Key="p/k")["VersionId"])
    client.put_object(Bucket=bucket, Key="p/other", Body=b"o")
    store = S3Storage(S3Location.parse(f"s3:{s3_env.endpoint}/{bucket}/p"))
    assert store.versions.status() == "enabled"
    listed = [v for v in store.versions.versions("") if v.name == "k"]
    assert [v.version_id for v in listed] == made[::-1]
    assert [v.deleted for v in listed] == [True, False, True, False]
    assert store.versions.read_version("k", made[2], 0, 1) == b"v"
    with pytest.raises(ObjectMissing):
        store.versions.read_version("k", made[1])  # a delete marker holds nothing
    with pytest.raises(ObjectMissing):
        store.versions.read_version("k", "0" * 32)
    seconds = {v.modified for v in listed}
    if len(seconds) == 1:  # all in one second: only the order can tell
        view = AsOfStorage(store, store.versions, seconds.pop())
        assert dict(view.list("")) == {"other": 1}


def test_the_order_without_the_raw_response_falls_back_to_the_times() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    later = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    page = {
        "Versions": [
            {"Key": "a", "VersionId": "2", "LastModified": t},
            {"Key": "b", "VersionId": "4", "LastModified": t},
        ],
        "DeleteMarkers": [{"Key": "a", "VersionId": "3", "LastModified": later}],
    }
    assert [(e["VersionId"], d) for e, d in entries_in_order(page)] == [
        ("3", True),
        ("2", False),
        ("4", False),
    ]
    page[ORDER_KEY] = "VDV"  # as the store listed them
    assert [e["VersionId"] for e, _ in entries_in_order(page)] == ["2", "3", "4"]


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse: cannot mount FUSE")
def test_mount_as_of_shows_the_snapshots_of_then(
    bucket: str, s3_env, tmp_path: Path, run_cli: Run
) -> None:  # type: ignore[no-untyped-def]
    url = s3_env.url("m", bucket=bucket)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"then\n")
    assert run_cli("init", "--repo", url).code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    when = _now_after_tick()
    client = s3_env.client()
    for key in _current_keys(client, bucket):
        client.delete_object(Bucket=bucket, Key=key)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    m = Mounted(url, mnt, "--as-of", _iso(when))  # type: ignore[arg-type]
    try:
        (name,) = [n for n in os.listdir(mnt / "snapshots") if n != "latest"]
        seen = mnt / "snapshots" / name / os.fspath(src).lstrip("/") / "f"
        assert seen.read_bytes() == b"then\n"
    finally:
        code, err = m.stop()
    assert code == 0, err
    assert _current_keys(client, bucket) == []  # the mount wrote nothing: not a lock
