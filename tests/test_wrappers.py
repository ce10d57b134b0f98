"""The storage wrappers: retry policy, token buckets, request metering, the archive capability
through every wrapper, and the bandwidth caps measured end to end over 30-second transfers on
the local backend."""

from __future__ import annotations

import os
import time

import pytest

from cairn.app.context import StackHooks, StoreOptions, stack_hooks, wrap_backend
from cairn.core.errors import ObjectArchived, ObjectMissing, StorageError, TransientStorageError
from cairn.storage.archive import ARCHIVED, RESTORED, RESTORING
from cairn.storage.base import Storage
from cairn.storage.faulty import FaultyStorage
from cairn.storage.local import LocalStorage
from cairn.storage.memory import MemoryStorage
from cairn.storage.memoryversions import VersionedMemoryStorage
from cairn.storage.metered import LIST_PAGE, MeteredStorage, Usage
from cairn.storage.retry import RetryingStorage, RetryPolicy
from cairn.storage.throttle import ThrottledStorage, TokenBucket

KIB = 1024


def no_wait(seconds: float) -> None:
    pass


def flaky(root, failures: int, transient: bool = True) -> FaultyStorage:  # type: ignore[no-untyped-def]
    """A local store whose first ``failures`` calls of each operation fail (a listing after
    two names)."""
    store = FaultyStorage(LocalStorage(root))
    for op in ("read", "read_into", "write", "stat", "delete"):
        store.fail(op, times=failures, transient=transient)
    store.fail("list", times=failures, after=2, transient=transient)
    return store


def test_retry_with_exponential_backoff_and_jitter(tmp_path):
    sleeps: list[float] = []
    store = RetryingStorage(
        flaky(tmp_path, failures=4), RetryPolicy(attempts=6, base_delay=0.5, sleep=sleeps.append)
    )
    store.write("a", b"x")
    assert store.read("a") == b"x"
    assert len(sleeps) == 8
    caps = [0.5, 1.0, 2.0, 4.0] * 2
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, caps, strict=True))
    assert len(set(sleeps)) > 1  # jittered


def test_the_default_retries_outlast_a_store_away_for_15_seconds():
    """An S3 gateway restarting takes a few seconds: the default attempts wait at least 15.8 s
    in all, whatever the jitter draws (draws from zero up could spend all 8 attempts in a
    second or two). Timed on a clock of its own: the waits are only added up."""
    for _ in range(50):
        now = [0.0]

        def sleep(seconds: float, now: list[float] = now) -> None:
            now[0] += seconds

        def request(now: list[float] = now) -> str:
            if now[0] < 15.5:
                raise TransientStorageError("connection refused")
            return "answered"

        assert RetryPolicy(sleep=sleep).call(request) == "answered"


def test_the_policy_without_jitter_doubles_up_to_its_cap():
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_retry_gives_up_with_a_clear_error(tmp_path):
    store = RetryingStorage(flaky(tmp_path, failures=10), RetryPolicy(attempts=3, sleep=no_wait))
    with pytest.raises(TransientStorageError, match="gave up after 3 attempts"):
        store.write("a", b"x")


def test_permanent_errors_are_not_retried(tmp_path):
    inner = flaky(tmp_path, failures=1, transient=False)
    store = RetryingStorage(inner, RetryPolicy(attempts=5, sleep=no_wait))
    with pytest.raises(StorageError):
        store.write("a", b"x")
    assert inner.calls["write"] == 1
    with pytest.raises(ObjectMissing):
        RetryingStorage(LocalStorage(tmp_path)).read("missing")


def test_the_policy_says_which_errors_are_transient(tmp_path):
    inner = flaky(tmp_path, failures=2, transient=False)
    policy = RetryPolicy(attempts=3, sleep=no_wait, transient=(StorageError,))
    RetryingStorage(inner, policy).write("a", b"x")
    assert inner.calls["write"] == 3


def test_read_into_is_retried(tmp_path):
    LocalStorage(tmp_path).write("data/aa/1", b"hello world")
    inner = flaky(tmp_path, failures=2)
    store = RetryingStorage(inner, RetryPolicy(attempts=4, sleep=no_wait))
    out = memoryview(bytearray(5))
    assert store.read_into("data/aa/1", 6, out) == 5 and out == b"world"
    assert inner.calls["read_into"] == 3


def test_list_restarts_without_duplicates(tmp_path):
    for i in range(6):
        LocalStorage(tmp_path).write(f"index/{i}", b"i")
    inner = flaky(tmp_path, failures=2)
    store = RetryingStorage(inner, RetryPolicy(attempts=4, sleep=no_wait))
    names = [n for n, _ in store.list("index/")]
    assert sorted(names) == [f"index/{i}" for i in range(6)]
    assert inner.calls["list"] == 3


def test_metering_counts_requests_and_bytes(tmp_path):
    store = MeteredStorage(LocalStorage(tmp_path))
    store.write("data/aa/1", b"x" * 100)
    store.write("data/aa/2", b"y" * 50)
    store.read("data/aa/1")
    store.read("data/aa/1", 10, 20)
    assert store.read_into("data/aa/2", 40, memoryview(bytearray(30))) == 10  # where it ends
    store.stat("data/aa/2")
    assert len(list(store.list("data/"))) == 2
    store.delete("data/aa/2")
    with pytest.raises(ObjectMissing):
        store.stat("data/aa/2")
    u = store.snapshot()
    assert (u.put, u.get, u.head, u.list, u.delete) == (2, 3, 2, 1, 1)
    assert (u.bytes_up, u.bytes_down) == (150, 130)


def test_metering_counts_listing_pages_and_archive_requests():
    backend = MemoryStorage(classes=True, data_class="GLACIER")
    for i in range(LIST_PAGE + 1):
        backend.write(f"data/{i:05d}", b"d", metadata=False)
    meter = MeteredStorage(backend)
    assert len(list(meter.list("data/"))) == LIST_PAGE + 1  # two LIST requests
    archive = meter.archive
    assert archive is not None
    assert len(list(archive.list_with_class("data/"))) == LIST_PAGE + 1  # two more
    assert archive.restore_status("data/00000") == ARCHIVED  # a HEAD
    archive.request_restore("data/00000", 1, "Standard")  # a RestoreObject
    u = meter.snapshot()
    assert (u.list, u.head, u.restore, u.get, u.put) == (4, 1, 1, 0, 0)
    assert u.as_dict()["restore"] == 1
    # a snapshot's summary (a backup never restores) keeps its seven counts
    assert set(Usage(put=1).as_dict()) == {
        "put", "get", "head", "list", "delete", "bytes_up", "bytes_down"
    }  # fmt: skip
    assert u.minus(u) == Usage()


def test_every_wrapper_offers_the_archive_capability_and_retries_its_calls():
    backend = MemoryStorage(classes=True, data_class="GLACIER")
    backend.write("data/aa/cold", b"c" * 10, metadata=False)
    faulty = FaultyStorage(backend)
    for op in ("list_with_class", "request_restore", "restore_status"):
        faulty.fail(op, times=2)
    meter = MeteredStorage(faulty)
    throttled = ThrottledStorage(meter, upload=1e6, download=1e6)
    store = RetryingStorage(throttled, RetryPolicy(attempts=3, sleep=no_wait))
    archive = store.archive
    assert archive is not None
    assert [i.storage_class for i in archive.list_with_class("data/")] == ["GLACIER"]
    assert archive.restore_status("data/aa/cold") == ARCHIVED
    archive.request_restore("data/aa/cold", 3, "Bulk")
    assert archive.restore_status("data/aa/cold") == RESTORING
    with pytest.raises(ObjectArchived):
        store.read("data/aa/cold")
    backend.finish_restores()
    assert archive.restore_status("data/aa/cold") == RESTORED
    assert store.read("data/aa/cold") == b"c" * 10
    assert backend.restore_requests == [("data/aa/cold", 3, "Bulk")]
    assert faulty.calls == {
        "list_with_class": 3, "restore_status": 5, "request_restore": 3, "read": 2
    }  # fmt: skip
    u = meter.snapshot()  # every attempt is a request
    assert (u.list, u.head, u.restore, u.get) == (3, 5, 3, 1)
    faulty.fail("restore_status", times=3)
    with pytest.raises(TransientStorageError, match="gave up after 3 attempts"):
        archive.restore_status("data/aa/cold")


def test_a_store_without_storage_classes_has_no_archive_below_any_wrapper(tmp_path):
    for store in (LocalStorage(tmp_path), MemoryStorage()):
        faulty = FaultyStorage(store)
        stacked = RetryingStorage(ThrottledStorage(MeteredStorage(faulty), upload=1e6))
        assert store.archive is None and faulty.archive is None and stacked.archive is None


def test_the_fault_injector_runs_callbacks_fails_chosen_names_and_logs(tmp_path):
    store = FaultyStorage(MemoryStorage())
    events: list[str] = []
    store.before("write", "index/", lambda: events.append("before index write"))
    store.fail("read", lambda name: name.endswith("/bad"), transient=False, times=None)
    store.fail("stat", "keys/", error=StorageError("keys/x: no space left on device"))
    store.write("data/aa/1", b"one")
    store.write("index/1", b"i")
    store.write("index/2", b"i")  # the callback ran once
    store.write("data/aa/bad", b"two")
    assert events == ["before index write"]
    assert store.read("data/aa/1", 1, 2) == b"ne"
    for _ in range(2):
        with pytest.raises(StorageError, match="data/aa/bad: injected fault") as e:
            store.read("data/aa/bad")
        assert not isinstance(e.value, TransientStorageError)
    with pytest.raises(StorageError, match="no space left"):
        store.stat("keys/x")
    assert store.read_into("index/1", 0, memoryview(bytearray(4))) == 1
    assert store.calls == {"write": 4, "read": 3, "stat": 1, "read_into": 1}
    assert [(c.op, c.name, c.offset, c.length) for c in store.log if c.op.startswith("read")] == [
        ("read", "data/aa/1", 1, 2),
        ("read", "data/aa/bad", 0, None),
        ("read", "data/aa/bad", 0, None),
        ("read_into", "index/1", 0, 4),
    ]
    with pytest.raises(ValueError):
        store.fail("write", after=1)
    with pytest.raises(ValueError):
        store.fail("rename")


def test_stack_hooks_wrap_the_backend_below_the_meter_and_keep_the_attempts():
    made: list[FaultyStorage] = []

    def faulty(backend: Storage) -> Storage:
        made.append(FaultyStorage(backend))
        return made[-1]

    with stack_hooks(StackHooks(wrappers=(faulty,), retry=RetryPolicy(base_delay=0.0))):
        store, meter = wrap_backend(MemoryStorage(), StoreOptions(retries=3))
    wrap_backend(MemoryStorage(), StoreOptions())  # outside the block: no hooks
    assert len(made) == 1 and meter.inner is made[0]
    made[0].fail("write", times=5)
    with pytest.raises(TransientStorageError, match="gave up after 3 attempts"):
        store.write("a", b"x")
    assert made[0].calls["write"] == 3 and meter.snapshot().put == 0


def test_token_bucket_paces_with_a_fake_clock():
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    bucket = TokenBucket(100 * KIB, burst=0.25, clock=lambda: now[0], sleep=sleep)
    bucket.take(1000 * KIB)
    # 25 KiB of initial credit (at least one 64 KiB piece), the rest at 100 KiB/s
    assert 9.3 <= now[0] <= 10.0


def _timed(run_cli, *args):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    res = run_cli(*args)
    return res, time.monotonic() - t0


@pytest.mark.slow
def test_upload_and_download_caps_hold_within_ten_percent_over_30_seconds(tmp_path, run_cli):
    rate_kib = 2048  # 2 MiB/s: 60 MiB takes 30 s
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}.bin").write_bytes(os.urandom(10 << 20))
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo, "--pack-size", "2M").code == 0
    res, elapsed = _timed(
        run_cli, "backup", "--repo", repo, src, "--limit-upload", str(rate_kib), "--json"
    )
    assert res.code == 0, res.err
    up = res.json()["summary"]["requests"]["bytes_up"]
    expected = up / (rate_kib * KIB)
    assert expected > 28
    assert abs(elapsed - expected) / expected < 0.10, (elapsed, expected)
    res, elapsed = _timed(
        run_cli,
        "restore",
        "--repo",
        repo,
        f"latest:{src}",
        "--target",
        tmp_path / "out",
        "--limit-download",
        str(rate_kib),
    )
    assert res.code == 0, res.err
    expected = (60 << 20) / (rate_kib * KIB)
    assert abs(elapsed - expected) / expected < 0.10, (elapsed, expected)


def test_a_store_opened_read_only_refuses_every_change_before_sending_it():
    """--no-lock: writes, deletes, version copies and markers, and retention changes are
    refused in one line and never reach the store (nor its request count); reads, listings
    and versions pass."""
    inner = VersionedMemoryStorage()
    inner.write("config", b"c")
    storage, meter = wrap_backend(inner, StoreOptions(read_only=True))
    assert storage.read("config") == b"c"
    assert dict(storage.list("")) == {"config": 1}
    versions = storage.versions
    assert versions is not None
    (entry,) = list(versions.versions(""))
    assert versions.read_version("config", entry.version_id) == b"c"
    before = meter.snapshot()
    refused = [
        lambda: storage.write("config", b"other"),
        lambda: storage.write("index/new", b"x"),
        lambda: storage.delete("config"),
        lambda: versions.restore_version("config", entry.version_id),
        lambda: versions.hide("config"),
    ]
    for change in refused:
        with pytest.raises(StorageError, match=r"opened read-only \(--no-lock\)"):
            change()
    assert (meter.snapshot().put, meter.snapshot().delete) == (before.put, before.delete)
    assert inner.read("config") == b"c" and len(list(inner.versions.versions(""))) == 1
    assert storage.objects is None
    assert wrap_backend(inner, StoreOptions())[0].versions is not None  # without the flag


def test_a_read_only_store_refuses_retention_changes_but_reads_them():
    from cairn.storage.readonly import ReadOnlyLock

    class Lock:
        def retention(self, name):  # type: ignore[no-untyped-def]
            return ("kept", name)

        def extend(self, name, until):  # type: ignore[no-untyped-def]
            raise AssertionError("sent")

        def configure_bucket(self, rule, noncurrent_days):  # type: ignore[no-untyped-def]
            raise AssertionError("sent")

    lock = ReadOnlyLock(Lock(), "s3://b/r")  # type: ignore[arg-type]
    assert lock.retention("config") == ("kept", "config")
    with pytest.raises(StorageError, match="--no-lock"):
        lock.extend("config", None)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="--no-lock"):
        lock.configure_bucket(None, None)  # type: ignore[arg-type]
