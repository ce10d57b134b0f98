"""The storage wrappers: retry policy, token buckets, request metering, and the bandwidth caps
measured end to end over 30-second transfers on the local backend."""

from __future__ import annotations

import os
import time

import pytest

from cairn.core.errors import ObjectMissing, StorageError, TransientStorageError
from cairn.storage.local import LocalStorage
from cairn.storage.metered import MeteredStorage
from cairn.storage.retry import RetryingStorage, RetryPolicy
from cairn.storage.throttle import TokenBucket

KIB = 1024


def no_wait(seconds: float) -> None:
    pass


class Flaky(LocalStorage):
    """Fails the first ``failures`` calls of each operation with a transient error."""

    def __init__(self, root, failures: int, error=TransientStorageError) -> None:  # type: ignore[no-untyped-def]
        super().__init__(root)
        self.failures = failures
        self.error = error
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if self.calls[op] <= self.failures:
            raise self.error(f"{op}: injected failure")

    def read(self, name, offset=0, length=None):  # type: ignore[no-untyped-def]
        self._maybe_fail("read")
        return super().read(name, offset, length)

    def read_into(self, name, offset, out):  # type: ignore[no-untyped-def]
        self._maybe_fail("read_into")
        return super().read_into(name, offset, out)

    def write(self, name, data, *, metadata=True):  # type: ignore[no-untyped-def]
        self._maybe_fail("write")
        super().write(name, data, metadata=metadata)

    def list(self, prefix):  # type: ignore[no-untyped-def]
        self.calls["list"] = self.calls.get("list", 0) + 1
        for i, item in enumerate(super().list(prefix)):
            if self.calls["list"] <= self.failures and i == 2:
                raise TransientStorageError("list: connection lost mid-listing")
            yield item


def test_retry_with_exponential_backoff_and_jitter(tmp_path):
    sleeps: list[float] = []
    store = RetryingStorage(
        Flaky(tmp_path, failures=4), RetryPolicy(attempts=6, base_delay=0.5, sleep=sleeps.append)
    )
    store.write("a", b"x")
    assert store.read("a") == b"x"
    assert len(sleeps) == 8
    caps = [0.5, 1.0, 2.0, 4.0] * 2
    assert all(0 <= s <= c for s, c in zip(sleeps, caps, strict=True))
    assert len(set(sleeps)) > 1  # jittered


def test_retry_gives_up_with_a_clear_error(tmp_path):
    store = RetryingStorage(Flaky(tmp_path, failures=10), RetryPolicy(attempts=3, sleep=no_wait))
    with pytest.raises(TransientStorageError, match="gave up after 3 attempts"):
        store.write("a", b"x")


def test_the_policy_without_jitter_doubles_up_to_its_cap():
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_permanent_errors_are_not_retried(tmp_path):
    inner = Flaky(tmp_path, failures=1, error=StorageError)
    store = RetryingStorage(inner, RetryPolicy(attempts=5, sleep=no_wait))
    with pytest.raises(StorageError):
        store.write("a", b"x")
    assert inner.calls["write"] == 1
    with pytest.raises(ObjectMissing):
        RetryingStorage(LocalStorage(tmp_path)).read("missing")


def test_the_policy_says_which_errors_are_transient(tmp_path):
    inner = Flaky(tmp_path, failures=2, error=StorageError)
    policy = RetryPolicy(attempts=3, sleep=no_wait, transient=(StorageError,))
    RetryingStorage(inner, policy).write("a", b"x")
    assert inner.calls["write"] == 3


def test_read_into_is_retried(tmp_path):
    LocalStorage(tmp_path).write("data/aa/1", b"hello world")
    inner = Flaky(tmp_path, failures=2)
    store = RetryingStorage(inner, RetryPolicy(attempts=4, sleep=no_wait))
    out = memoryview(bytearray(5))
    assert store.read_into("data/aa/1", 6, out) == 5 and out == b"world"
    assert inner.calls["read_into"] == 3


def test_list_restarts_without_duplicates(tmp_path):
    for i in range(6):
        LocalStorage(tmp_path).write(f"index/{i}", b"i")
    store = RetryingStorage(Flaky(tmp_path, failures=2), RetryPolicy(attempts=4, sleep=no_wait))
    names = [n for n, _ in store.list("index/")]
    assert sorted(names) == [f"index/{i}" for i in range(6)]


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
