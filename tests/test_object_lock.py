"""S3 Object Lock on a real SeaweedFS: `init --object-lock`, every object locked when written,
locks extended only when a backup needs it, forget and prune on locked data, and `check`
catching data locked too briefly. Time moves through cairn.core.clock (the server's own clock
only has to see the dates in the future, which they are)."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.exceptions
import pytest

from cairn.app.context import StackHooks, stack_hooks
from cairn.core import clock
from cairn.core.errors import RepositoryError
from cairn.repo.config import RepoConfig
from cairn.repo.lockrule import lock_field, lock_rule
from cairn.repo.repository import Repository
from cairn.storage.base import Storage, StorageWrapper
from cairn.storage.local import LocalStorage
from cairn.storage.objectlock import LockWrapper, ObjectLockStore, RetentionRule
from cairn.storage.s3 import S3Storage
from cairn.storage.s3config import S3Location, S3Options
from tests.conftest import PASSWORD


@dataclass(frozen=True)
class Place:
    """Where a test's repository is: ``top`` + ``repo/`` in bucket ``name``."""

    name: str
    top: str = ""

    def key(self, name: str) -> str:
        return self.top + name


@pytest.fixture
def bucket(s3_env) -> Place:  # type: ignore[no-untyped-def]
    """A bucket of its own, not created yet (the test or init creates it)."""
    return Place(f"lock-{os.urandom(6).hex()}")


@pytest.fixture(scope="module")
def _shared_bucket(s3_server) -> str:  # type: ignore[no-untyped-def]
    """One bucket with Object Lock for the tests that need no bucket of their own (a store
    allocates volumes per bucket: a bucket per test would exhaust a small test server's)."""
    name = f"lock-shared-{os.urandom(4).hex()}"
    s3_server.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture
def locked(s3_env, _shared_bucket: Place) -> Place:  # type: ignore[no-untyped-def]
    """A fresh place in the shared locked bucket."""
    return Place(_shared_bucket, f"t-{os.urandom(6).hex()}/")


@pytest.fixture
def fake_now(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """Sets cairn's clock to the real time plus an offset (only ever forward)."""
    start = datetime.now(UTC)

    def move(offset: timedelta) -> None:
        monkeypatch.setattr(clock, "now", lambda: start + offset)

    return move


class _CountingLock(LockWrapper):
    def __init__(self, inner: ObjectLockStore, calls: list[str]) -> None:
        super().__init__(inner)
        self.calls = calls

    def extend(self, name: str, until: datetime) -> None:
        self.calls.append(name)
        self.inner.extend(name, until)


class _CountingStore(StorageWrapper):
    """Below the meter: what reaches the store. ``calls`` gets the name of every object
    whose lock is extended, and ``writes`` (if given) of every object written."""

    def __init__(self, inner: Storage, calls: list[str], writes: list[str] | None) -> None:
        super().__init__(inner)
        self.calls = calls
        self.writes = writes

    def write(self, name: str, data, *, metadata: bool = True) -> None:  # type: ignore[no-untyped-def]
        super().write(name, data, metadata=metadata)
        if self.writes is not None:
            self.writes.append(name)

    @property
    def object_lock(self) -> ObjectLockStore | None:
        inner = self.inner.object_lock
        return None if inner is None else _CountingLock(inner, self.calls)


def _counting(calls: list[str], writes: list[str] | None = None) -> Iterator[None]:
    def wrap(store: Storage) -> Storage:
        return _CountingStore(store, calls, writes)

    return stack_hooks(StackHooks(wrappers=(wrap,)))  # type: ignore[return-value]


def _stored(client, bucket: Place) -> set[str]:  # type: ignore[no-untyped-def]
    """The names of the objects every snapshot needs (no locks, snapshots, records)."""
    names = {k.removeprefix("repo/") for k in _keys(client, bucket)}
    return {n for n in names if n.split("/")[0] in ("config", "keys", "index", "data")}


def _url(server, bucket: Place) -> str:  # type: ignore[no-untyped-def]
    return server.url(bucket.top + "repo", bucket=bucket.name)


def _keys(client, bucket: Place) -> list[str]:  # type: ignore[no-untyped-def]
    """The names in the test's place, without its ``top``: ``repo/...``."""
    listing = client.list_objects_v2(Bucket=bucket.name, Prefix=bucket.top)
    return [o["Key"].removeprefix(bucket.top) for o in listing.get("Contents", [])]


def _until(client, bucket: Place, key: str) -> datetime:  # type: ignore[no-untyped-def]
    got = client.get_object_retention(Bucket=bucket.name, Key=bucket.key(key))
    return got["Retention"]["RetainUntilDate"]


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(os.urandom(3000))
    (src / "g").write_text("unchanged")
    return src


def test_init_refuses_a_local_repository_and_a_bucket_without_object_lock(
    tmp_path: Path, run_cli, s3_env, bucket: Place
) -> None:  # type: ignore[no-untyped-def]
    local = tmp_path / "repo"
    res = run_cli("init", "--repo", local, "--object-lock", "7")
    assert res.code != 0 and "needs an S3 repository" in res.err
    assert not local.exists()
    client = s3_env.client()
    client.create_bucket(Bucket=bucket.name)
    res = run_cli("init", "--repo", _url(s3_env, bucket), "--object-lock", "7")
    assert res.code != 0
    assert "the bucket has no Object Lock" in res.err and len(res.err.strip().splitlines()) == 1
    assert _keys(client, bucket) == []  # nothing created
    res = run_cli("init", "--repo", _url(s3_env, bucket), "--lock-mode", "compliance")
    assert res.code != 0 and "applies only with --object-lock" in res.err


@pytest.mark.parametrize("mode", ["governance", "compliance"])
def test_every_object_written_is_locked_for_at_least_the_days(
    tmp_path: Path, run_cli, s3_env, bucket: Place, mode: str
) -> None:  # type: ignore[no-untyped-def]
    url = _url(s3_env, bucket)
    args = ["--lock-mode", mode] if mode == "compliance" else []  # governance: the default
    res = run_cli("init", "--repo", url, "--object-lock", "3", *args, "--json")
    assert res.code == 0, res.err
    assert res.json()["object_lock"] == {"days": 3, "mode": mode}
    before = datetime.now(UTC)
    assert run_cli("backup", "--repo", url, _tree(tmp_path)).code == 0
    client = s3_env.client()
    keys = _keys(client, bucket)
    assert {k.split("/")[1] for k in keys} >= {"config", "keys", "index", "data", "snapshots"}
    for key in keys:
        got = client.get_object_retention(Bucket=bucket.name, Key=key)["Retention"]
        assert got["Mode"] == mode.upper()
        assert got["RetainUntilDate"] >= before + timedelta(days=3), key
    # the bucket cairn created: default retention and the lifecycle rule for old versions
    config = client.get_object_lock_configuration(Bucket=bucket.name)["ObjectLockConfiguration"]
    assert config["Rule"]["DefaultRetention"] == {"Mode": mode.upper(), "Days": 3}
    rules = client.get_bucket_lifecycle_configuration(Bucket=bucket.name)["Rules"]
    assert rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 4  # 3 + a day's margin


def test_a_locked_version_cannot_be_deleted_and_the_repository_still_checks(
    tmp_path: Path, run_cli, s3_env, locked: Place
) -> None:  # type: ignore[no-untyped-def]
    bucket = locked
    url = _url(s3_env, bucket)
    assert run_cli("init", "--repo", url, "--object-lock", "2").code == 0
    assert run_cli("backup", "--repo", url, _tree(tmp_path)).code == 0
    client = s3_env.client()
    packs = [k for k in _keys(client, bucket) if k.startswith("repo/data/")]
    for key in packs:  # what an attacker holding cairn's keys would do
        version = client.head_object(Bucket=bucket.name, Key=bucket.key(key))["VersionId"]
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client.delete_object(Bucket=bucket.name, Key=bucket.key(key), VersionId=version)
        assert e.value.response["Error"]["Code"] == "AccessDenied"
    check = run_cli("check", "--repo", url, "--read-data")
    assert check.code == 0, check.out + check.err


def test_locks_are_extended_when_and_only_when_a_backup_needs_it(
    tmp_path: Path, run_cli, s3_env, locked: Place, fake_now
) -> None:  # type: ignore[no-untyped-def]
    """DAYS 8 (a margin of 2 days): a daily backup of an unchanged tree extends nothing until
    the objects' locks end within 8 days, then each object once, and nothing the next days."""
    bucket = locked
    url = _url(s3_env, bucket)
    src = _tree(tmp_path)
    fake_now(timedelta(0))
    assert run_cli("init", "--repo", url, "--object-lock", "8").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    client = s3_env.client()
    first = _stored(client, bucket)
    per_day: list[int] = []
    extended: dict[str, list[int]] = {}
    for day in range(1, 8):
        fake_now(timedelta(days=day, minutes=day))
        calls: list[str] = []
        writes: list[str] = []
        with _counting(calls, writes):
            if day == 2:  # a dry run counts them, extends nothing, and prices them
                rehearsal = run_cli("backup", "--repo", url, src, "--dry-run", "--json").json()
                assert calls == [] and rehearsal["object_lock"]["dry_run"]
                would = rehearsal["object_lock"]["extended"]
                assert rehearsal["estimate"]["lock_extensions"] == would > 0
            res = run_cli("backup", "--repo", url, src, "--json")
        assert res.code == 0, res.err
        lock = res.json()["object_lock"]
        assert lock["extended"] == len(calls) == len(set(calls))  # one request per object
        assert lock["asked"] == 0  # the cache knew every date
        if day == 2:
            assert len(calls) == would
        per_day.append(len(calls))
        # each extension is a PUT in the backup's request counts (the snapshot comes after)
        puts = res.json()["summary"]["requests"]["put"]
        assert puts == len(calls) + sum(not w.startswith("snapshots/") for w in writes)
        for name in calls:
            extended.setdefault(name, []).append(day)
        needed = datetime.now(UTC) + timedelta(days=day + 8)
        for key in _keys(client, bucket):
            if not key.startswith(("repo/locks/", "repo/snapshots/")):
                assert _until(client, bucket, key) >= needed - timedelta(minutes=1), key
    # written for 8 + 2 days: nothing on day 1, every object on day 2 (its lock would end
    # before the new snapshot's), then nothing until the margin of 2 days is used up again
    assert per_day[0] == 0
    assert {name: days for name, days in extended.items() if name in first} == {
        name: [2, 4, 6] for name in first
    }
    for days in extended.values():  # objects written later too: once per margin at most
        assert all(b - a >= 2 for a, b in itertools.pairwise(days))


def test_a_missing_cache_costs_a_question_per_object_but_no_extension(
    tmp_path: Path, run_cli, s3_env, locked: Place, fake_now
) -> None:  # type: ignore[no-untyped-def]
    bucket = locked
    url = _url(s3_env, bucket)
    src = _tree(tmp_path)
    fake_now(timedelta(0))
    assert run_cli("init", "--repo", url, "--object-lock", "8").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    shutil.rmtree(tmp_path / "cache")
    fake_now(timedelta(days=1))
    calls: list[str] = []
    with _counting(calls):
        res = run_cli("backup", "--repo", url, src, "--json")
    assert res.code == 0, res.err
    lock = res.json()["object_lock"]
    # every object the first backup left is asked about (those this one wrote are known)
    assert 5 <= lock["asked"] <= lock["objects"] and calls == []
    # and when the locks are near their end, the dates asked decide: each object once
    shutil.rmtree(tmp_path / "cache")
    fake_now(timedelta(days=3))
    with _counting(calls):
        res = run_cli("backup", "--repo", url, src, "--json")
    assert res.json()["object_lock"]["extended"] == len(calls) == len(set(calls)) > 0


def test_forget_prune_says_one_date_when_its_prune_deletes_seconds_later(
    tmp_path: Path, run_cli, s3_env, locked: Place, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The forget deletes its snapshots first, its prune packs later: the date the command
    gives for everything it deleted is the later one (a clock that moves a second per call
    makes them always differ)."""
    url = _url(s3_env, locked)
    src = _tree(tmp_path)
    assert run_cli("init", "--repo", url, "--object-lock", "2").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    (src / "d" / "f").write_bytes(os.urandom(3000))
    assert run_cli("backup", "--repo", url, src).code == 0
    start, calls = datetime.now(UTC), [0]

    def ticking() -> datetime:
        calls[0] += 1
        return start + timedelta(seconds=calls[0])

    monkeypatch.setattr(clock, "now", ticking)
    res = run_cli("forget", "--repo", url, "--keep-last", "1", "--prune", "--json")
    assert res.code == 0, res.err
    doc = res.json()
    freed = datetime.fromisoformat(doc["prune"]["freed_after"])
    assert datetime.fromisoformat(doc["kept_until"]) == freed


def test_forget_and_prune_on_a_locked_repository_succeed_and_say_when_space_is_freed(
    tmp_path: Path, run_cli, s3_env, locked: Place
) -> None:  # type: ignore[no-untyped-def]
    bucket = locked
    url = _url(s3_env, bucket)
    src = _tree(tmp_path)
    assert run_cli("init", "--repo", url, "--object-lock", "2").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    client = s3_env.client()
    first_packs = {k for k in _keys(client, bucket) if k.startswith("repo/data/")}
    (src / "d" / "f").write_bytes(os.urandom(3000))
    assert run_cli("backup", "--repo", url, src).code == 0
    res = run_cli("forget", "--repo", url, "--keep-last", "1", "--prune", "--json")
    assert res.code == 0, res.err
    doc = res.json()
    freed = datetime.fromisoformat(doc["prune"]["freed_after"])
    assert timedelta(days=2) < freed - datetime.now(UTC) <= timedelta(days=3, minutes=1)
    assert datetime.fromisoformat(doc["kept_until"]) == freed
    gone = first_packs - set(_keys(client, bucket))
    assert gone  # the unused pack is deleted: a delete marker, its locked version stays
    for key in gone:
        versions = client.list_object_versions(Bucket=bucket.name, Prefix=bucket.key(key))
        (version,) = [v for v in versions["Versions"] if v["Key"] == bucket.key(key)]
        with pytest.raises(botocore.exceptions.ClientError):
            client.delete_object(
                Bucket=bucket.name, Key=bucket.key(key), VersionId=version["VersionId"]
            )
    text = run_cli("prune", "--repo", url)
    assert text.code == 0
    check = run_cli("check", "--repo", url)
    assert check.code == 0, check.out + check.err


def test_check_names_an_object_locked_too_briefly(
    tmp_path: Path, run_cli, s3_env, locked: Place
) -> None:  # type: ignore[no-untyped-def]
    """A pack whose current version has no retention (what a writer that ignores the
    repository's lock would leave): check fails and names it."""
    bucket = locked
    url = _url(s3_env, bucket)  # a bucket with Object Lock and no default retention
    assert run_cli("init", "--repo", url, "--object-lock", "2").code == 0
    assert run_cli("backup", "--repo", url, _tree(tmp_path)).code == 0
    client = s3_env.client()
    pack = next(k for k in _keys(client, bucket) if k.startswith("repo/data/"))
    body = client.get_object(Bucket=bucket.name, Key=bucket.key(pack))["Body"].read()
    # same bytes, a new unlocked version
    client.put_object(Bucket=bucket.name, Key=bucket.key(pack), Body=body)
    res = run_cli("check", "--repo", url, "--json")
    assert res.code != 0
    assert res.json()["retention_checked"] >= 5  # config, key, index, packs, snapshot
    findings = res.json()["findings"]
    assert [f["object"] for f in findings] == [pack.removeprefix("repo/")]
    assert "has no retention" in findings[0]["message"]


def test_an_object_uploaded_in_parts_is_locked_too(s3_env, bucket: Place) -> None:  # type: ignore[no-untyped-def]
    options = S3Options(path_style=True, multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    store = S3Storage(S3Location.parse(_url(s3_env, bucket)), options)
    assert store.create_bucket(object_lock=True)
    assert store.object_lock.bucket_locked()
    store.object_lock.retain_writes(RetentionRule(2))
    before = datetime.now(UTC)
    store.write("data/big", os.urandom(6 << 20), metadata=False)
    until = _until(s3_env.client(), bucket, "repo/data/big")
    assert until >= before + timedelta(days=2)
    assert store.object_lock.written()["data/big"] == until


def test_a_month_of_daily_backups_of_an_unchanged_tree_extends_each_object_once_a_margin(
    tmp_path: Path, run_cli, s3_env, locked: Place, fake_now
) -> None:  # type: ignore[no-untyped-def]
    """The figure of docs/performance.md: --object-lock 28 (a margin of 7 days), 28 daily
    backups of a tree that does not change. Each object is extended on days 7, 14, 21 and 28
    (one PutObjectRetention each), and on no other day: 4 requests per object in 28 days,
    one per object per margin."""
    bucket = locked
    url = _url(s3_env, bucket)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):  # several packs: 64 KiB ones
        (src / f"f{i}").write_bytes(os.urandom(40_000))
    fake_now(timedelta(0))
    assert run_cli("init", "--repo", url, "--object-lock", "28", "--pack-size", "64K").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    first = _stored(s3_env.client(), bucket)
    assert sum(n.startswith("data/") for n in first) >= 10
    per_day: list[int] = []
    extended: dict[str, list[int]] = {}
    for day in range(1, 29):
        fake_now(timedelta(days=day, minutes=day))
        calls: list[str] = []
        with _counting(calls):
            res = run_cli("backup", "--repo", url, src, "--json")
        assert res.code == 0, res.err
        assert len(calls) == len(set(calls)) <= res.json()["object_lock"]["objects"]
        per_day.append(len(calls))
        for name in calls:
            extended.setdefault(name, []).append(day)
    # what the first backup wrote: on days 7, 14, 21 and 28, one request each, never between
    assert {n: extended.get(n) for n in first} == {n: [7, 14, 21, 28] for n in first}
    for days in extended.values():  # (a directory's times may change: a new tree pack)
        assert all(b - a >= 7 for a, b in itertools.pairwise(days))
    print(f"\n{len(first)} objects; extensions per day {per_day}: {sum(per_day)} in 28")


def test_a_lock_another_host_made_later_is_not_shortened_and_not_an_error(
    tmp_path: Path, run_cli, s3_env, locked: Place, fake_now
) -> None:  # type: ignore[no-untyped-def]
    """This host's cache says a pack's lock ends soon; another host (its clock ahead) locked it
    for longer already, and the store refuses to shorten a lock: the backup takes that date."""
    bucket = locked
    url = _url(s3_env, bucket)
    src = _tree(tmp_path)
    fake_now(timedelta(0))
    assert run_cli("init", "--repo", url, "--object-lock", "8").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    client = s3_env.client()
    pack = next(n for n in _stored(client, bucket) if n.startswith("data/"))
    later = datetime.now(UTC) + timedelta(days=60)
    client.put_object_retention(
        Bucket=bucket.name,
        Key=bucket.key("repo/" + pack),
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later},
    )
    fake_now(timedelta(days=3))
    calls: list[str] = []
    with _counting(calls):
        res = run_cli("backup", "--repo", url, src, "--json")
    assert res.code == 0, res.err
    assert pack in calls  # tried, refused, and found locked for longer
    assert res.json()["object_lock"]["extended"] == len(calls) - 1
    assert _until(client, bucket, "repo/" + pack) >= later - timedelta(seconds=1)
    check = run_cli("check", "--repo", url)
    assert check.code == 0, check.out + check.err


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"days": 0, "mode": "governance"}, "from 1 to 36500"),
        ({"days": "30", "mode": "governance"}, "from 1 to 36500"),
        ({"days": 30, "mode": "legal-hold"}, "governance or compliance"),
        ([30], "a map of days and mode"),
    ],
)
def test_a_malformed_object_lock_field_is_refused(field: object, message: str) -> None:
    config = replace(RepoConfig.new(), extra={"object_lock": field})
    with pytest.raises(RepositoryError, match=message):
        lock_rule(RepoConfig.decode(config.encode()))


def test_the_object_lock_field_survives_the_config_round_trip() -> None:
    config = replace(RepoConfig.new(), extra=lock_field(RetentionRule(30, "COMPLIANCE")))
    decoded = RepoConfig.decode(config.encode())
    assert decoded.extra == {"object_lock": {"days": 30, "mode": "compliance"}}
    assert lock_rule(decoded) == RetentionRule(30, "COMPLIANCE")
    assert lock_rule(RepoConfig.new()) is None


def test_a_copy_on_a_store_that_cannot_lock_opens_with_a_notice(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """A locked repository copied to a directory (a mirror pulled there): it backs up and
    checks, unlocked, and says so."""
    repo = tmp_path / "repo"
    repo.mkdir()
    extra = lock_field(RetentionRule(30))
    Repository.create(LocalStorage(repo), PASSWORD.encode(), pack_size=1 << 20, extra=extra)
    backup = run_cli("backup", "--repo", repo, _tree(tmp_path))
    assert backup.code == 0, backup.err
    assert "has an object lock this store cannot keep" in backup.err
    check = run_cli("check", "--repo", repo)
    assert check.code == 0, check.out + check.err
    assert "shows no retention: not checked" in check.out + check.err


def test_a_copy_into_a_locked_repository_extends_what_its_snapshot_reuses(
    tmp_path: Path, run_cli, s3_env, locked: Place, fake_now, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """cairn copy keeps a copied snapshot's data locked as long as the copy, as a backup does:
    a week later, the same data copied again extends the locks of the packs it reuses."""
    url = _url(s3_env, locked)
    src_repo = tmp_path / "src-repo"
    src = _tree(tmp_path)
    fake_now(timedelta(0))
    assert run_cli("init", "--repo", src_repo).code == 0
    assert run_cli("backup", "--repo", src_repo, src).code == 0
    monkeypatch.setenv("CAIRN_FROM_PASSWORD", os.environ["CAIRN_PASSWORD"])
    made = run_cli(
        "init", "--repo", url, "--object-lock", "8", "--copy-chunker-params",
        "--from-repo", src_repo,
    )  # fmt: skip
    assert made.code == 0, made.err
    assert run_cli("copy", "--repo", url, "--from-repo", src_repo).code == 0
    client = s3_env.client()
    packs = [k for k in _keys(client, locked) if k.startswith("repo/data/")]
    assert packs

    fake_now(timedelta(days=7))
    assert run_cli("backup", "--repo", src_repo, src).code == 0  # the same data again
    calls: list[str] = []
    with _counting(calls):
        res = run_cli("copy", "--repo", url, "--from-repo", src_repo, "--json")
    assert res.code == 0, res.err
    assert res.json()["copied"] == 1 and res.json()["data_blobs"] == 0  # all of it reused
    assert {f"repo/{c}" for c in calls} >= set(packs)
    needed = datetime.now(UTC) + timedelta(days=7 + 8)
    for key in packs:
        assert _until(client, locked, key) >= needed - timedelta(minutes=5)
    check = run_cli("check", "--repo", url, "--json")
    assert check.code == 0, check.out + check.err
