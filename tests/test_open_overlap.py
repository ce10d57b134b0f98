"""Opening a repository and starting a backup send their independent requests at once on an
object store (the config with the key listing, the lock with the snapshots, the locks with the
index), in the order the prune protocol needs (format.md §12.2), and one at a time on a local
directory; the errors of opening stay what they were on both."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.app import knownkeys
from cairn.app.context import StackHooks, StoreOptions, backend_for, stack_hooks
from cairn.core.overlap import Overlap
from cairn.repo import keyring, layout
from cairn.storage.base import Buffer, Storage, StorageWrapper

DELAY = 0.1  # seconds every request takes: long beside the time it takes to start one


@dataclass(frozen=True)
class Span:
    op: str
    name: str  # the object, or the prefix listed
    start: float
    end: float

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


class Timeline(StorageWrapper):
    """A store whose every request takes ``DELAY`` (a round trip), recording when each ran."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def _timed(self, op: str, name: str, call):  # type: ignore[no-untyped-def]
        start = time.monotonic()
        time.sleep(DELAY)
        try:
            return call()
        finally:
            with self._lock:
                self.spans.append(Span(op, name, start, time.monotonic()))

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._timed("read", name, lambda: self.inner.read(name, offset, length))  # type: ignore[no-any-return]

    def write(self, name: str, data: Buffer, *, metadata: bool = True) -> None:
        self._timed("write", name, lambda: self.inner.write(name, data, metadata=metadata))

    def stat(self, name: str) -> int:
        return self._timed("stat", name, lambda: self.inner.stat(name))  # type: ignore[no-any-return]

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        return iter(self._timed("list", prefix, lambda: list(self.inner.list(prefix))))

    def delete(self, name: str) -> None:
        self._timed("delete", name, lambda: self.inner.delete(name))

    def one(self, op: str, name: str) -> Span:
        """The first request of ``op`` on ``name`` (a name prefix for reads and writes)."""
        found = [s for s in self.spans if s.op == op and s.name.startswith(name)]
        assert found, (op, name, self.spans)
        return min(found, key=lambda s: s.start)

    def most_at_once(self) -> int:
        return max(sum(1 for o in self.spans if o.overlaps(s)) for s in self.spans)


def timed(run_cli, *args: object) -> Timeline:  # type: ignore[no-untyped-def]
    """``cairn ARGS`` with every request of its store on the timeline."""
    timelines: list[Timeline] = []

    def wrap(backend: Storage) -> Storage:
        timelines.append(Timeline(backend))
        return timelines[-1]

    with stack_hooks(StackHooks(wrappers=(wrap,))):
        res = run_cli(*args)
    assert res.code == 0, res.err
    assert len(timelines) == 1
    return timelines[0]


def timed_backup(run_cli, url: str, src: Path) -> Timeline:  # type: ignore[no-untyped-def]
    """``cairn backup`` of ``src`` with every request of its store on the timeline."""
    return timed(run_cli, "backup", "--repo", url, src)


def lists_keys(t: Timeline) -> bool:
    return any(s.op == "list" and s.name == layout.KEYS for s in t.spans)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}").write_bytes(os.urandom(10_000))
    return root


def test_a_backup_on_s3_sends_its_independent_requests_at_once(
    s3_url, src, run_cli, tmp_path, monkeypatch
):
    assert run_cli("init", "--repo", s3_url).code == 0
    for _ in range(2):  # two snapshots to read for the parent
        assert run_cli("backup", "--repo", s3_url, src).code == 0
    # another host: it has no copies of the snapshots (docs/format.md §11.6), so reads them
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "other-host"))
    t = timed_backup(run_cli, s3_url, src)
    keys, config = t.one("list", layout.KEYS), t.one("read", layout.CONFIG)
    lock = t.one("write", layout.LOCKS)
    snapshots, locks, index = (
        t.one("list", p) for p in (layout.SNAPSHOTS, layout.LOCKS, layout.INDEX)
    )
    assert config.overlaps(keys)  # the config is read while the keys are listed
    assert snapshots.overlaps(lock)  # the parent is looked for while the lock is written
    assert locks.overlaps(index)  # the locks are read while the index is
    reads = [s for s in t.spans if s.op == "read" and s.name.startswith(layout.SNAPSHOTS)]
    assert len(reads) == 2 and reads[0].overlaps(reads[1])
    # the protocol: the lock is stored before the locks and the index are listed, and this
    # backup's own lock is not read back
    assert lock.end <= locks.start and lock.end <= index.start
    assert not any(s.op == "read" and s.name.startswith(layout.LOCKS) for s in t.spans)
    assert t.most_at_once() >= 3


def test_a_backup_on_a_local_directory_makes_one_request_at_a_time(tmp_path, src, run_cli):
    url = str(tmp_path / "repo")
    assert run_cli("init", "--repo", url).code == 0
    for i in range(2):  # a file changed between them: two index objects to read
        (src / "f0").write_bytes(os.urandom(10_000 + i))
        assert run_cli("backup", "--repo", url, src).code == 0
    t = timed_backup(run_cli, url, src)
    assert len([s for s in t.spans if s.op == "read" and s.name.startswith(layout.INDEX)]) == 2
    assert t.most_at_once() == 1
    # in the order they always had: keys, config, lock, index, snapshots
    order = [
        t.one(*call).start
        for call in (
            ("list", layout.KEYS),
            ("read", layout.CONFIG),
            ("write", layout.LOCKS),
            ("list", layout.INDEX),
            ("list", layout.SNAPSHOTS),
        )
    ]
    assert order == sorted(order)


# ------------------------------------------------------------------ the key this host knows
def test_a_host_that_opened_a_repository_before_reads_its_key_with_the_config(s3_url, src, run_cli):
    assert run_cli("init", "--repo", s3_url).code == 0
    assert run_cli("snapshots", "--repo", s3_url).code == 0  # lists the keys, keeps the one
    t = timed_backup(run_cli, s3_url, src)
    config, key = t.one("read", layout.CONFIG), t.one("read", layout.KEYS)
    assert config.overlaps(key)  # one round trip, where it took two
    assert not lists_keys(t)
    assert t.one("write", layout.LOCKS).start >= key.end
    assert run_cli("check", "--repo", s3_url).code == 0


def test_a_known_key_that_is_gone_or_refuses_the_password_brings_the_listing_back(
    s3_url, run_cli, monkeypatch
):
    assert run_cli("init", "--repo", s3_url).code == 0
    assert run_cli("snapshots", "--repo", s3_url).code == 0
    # a second password: the key this host knows refuses it, the other opens
    monkeypatch.setenv("CAIRN_NEW_PASSWORD", "second")
    assert run_cli("key", "add", "--repo", s3_url).code == 0
    monkeypatch.setenv("CAIRN_PASSWORD", "second")
    assert lists_keys(timed(run_cli, "snapshots", "--repo", s3_url))
    assert not lists_keys(timed(run_cli, "snapshots", "--repo", s3_url))  # now that one
    # the known key replaced by a new password: gone, so the keys are listed again
    monkeypatch.setenv("CAIRN_NEW_PASSWORD", "third")
    assert run_cli("key", "passwd", "--repo", s3_url).code == 0
    monkeypatch.setenv("CAIRN_PASSWORD", "third")
    assert lists_keys(timed(run_cli, "snapshots", "--repo", s3_url))
    assert not lists_keys(timed(run_cli, "snapshots", "--repo", s3_url))
    # a wrong password: every key tried once (the known one too), the error as it always was
    tried: list[object] = []
    real = keyring.open_key_file
    monkeypatch.setattr(keyring, "open_key_file", lambda kf, pw: tried.append(kf) or real(kf, pw))
    monkeypatch.setenv("CAIRN_PASSWORD", "not the password")
    assert "wrong password" in one_error_line(run_cli("snapshots", "--repo", s3_url))
    assert len(tried) == 2  # the known key (the third), then the second: not the third again


def test_a_damaged_known_key_is_reported_as_without_it(s3_url, run_cli, tmp_path, monkeypatch):
    assert run_cli("init", "--repo", s3_url).code == 0
    assert run_cli("snapshots", "--repo", s3_url).code == 0
    store = backend_for(s3_url, StoreOptions())
    [(name, _)] = list(store.list(layout.KEYS))
    store.delete(name)
    store.write(name, b"{}")
    known = one_error_line(run_cli("snapshots", "--repo", s3_url))
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "another-host"))
    assert one_error_line(run_cli("snapshots", "--repo", s3_url)) == known
    assert "every key file is damaged" in known and name in known


def test_no_key_is_kept_without_a_cache_nor_for_a_local_directory(s3_url, tmp_path, run_cli):
    base = tmp_path / "cache" / knownkeys.DIRECTORY  # CAIRN_CACHE_DIR, tests/conftest.py
    assert run_cli("init", "--repo", s3_url).code == 0
    assert run_cli("snapshots", "--repo", s3_url, "--no-cache").code == 0
    assert not base.exists()
    local = str(tmp_path / "repo")
    assert run_cli("init", "--repo", local).code == 0
    assert run_cli("snapshots", "--repo", local).code == 0
    assert not base.exists()
    assert run_cli("snapshots", "--repo", s3_url).code == 0
    assert len(list(base.iterdir())) == 1


def test_what_is_kept_is_a_key_file_name_or_nothing(tmp_path):
    url = "s3:http://127.0.0.1:1/bucket/prefix"
    assert knownkeys.known_key(tmp_path, url) is None
    name = layout.key_name("ab" * 32)
    knownkeys.remember_key(tmp_path, url, name)
    assert knownkeys.known_key(tmp_path, url) == name
    assert knownkeys.known_key(tmp_path, url + "/other") is None
    [kept] = (tmp_path / knownkeys.DIRECTORY).iterdir()
    for content in (b"keys/../config", b"config", b"keys/" + b"g" * 64, b"\xff\xfe", b""):
        kept.write_bytes(content)
        assert knownkeys.known_key(tmp_path, url) is None, content
    # kept by many threads at once (the web server opens sessions on several): each whole,
    # no temporary file left
    other_name = layout.key_name("cd" * 32)
    with ThreadPoolExecutor(8) as pool:
        kept_ok = list(
            pool.map(
                lambda i: knownkeys.remember_key(tmp_path, url, (name, other_name)[i % 2]),
                range(200),
            )
        )
    assert all(kept_ok) and knownkeys.known_key(tmp_path, url) in (name, other_name)
    assert [p.name for p in (tmp_path / knownkeys.DIRECTORY).iterdir()] == [kept.name]
    # where the name cannot be kept (a file in the directory's place): nothing kept, no error
    other = tmp_path / "other"
    other.mkdir()
    (other / knownkeys.DIRECTORY).write_bytes(b"")
    knownkeys.remember_key(other, url, name)
    assert knownkeys.known_key(other, url) is None
    assert not [p for p in other.iterdir() if p.name != knownkeys.DIRECTORY]


# ------------------------------------------------------------------ errors of opening
def one_error_line(res) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert res.code != 0 and len(lines) == 1 and "Traceback" not in res.err, res.err
    return lines[0]


@pytest.fixture
def initialised(repo_url: str, run_cli) -> tuple[str, Storage]:  # type: ignore[no-untyped-def]
    assert run_cli("init", "--repo", repo_url).code == 0
    return repo_url, backend_for(repo_url, StoreOptions())


def test_a_wrong_password_is_one_line(initialised, run_cli, monkeypatch):
    url, _ = initialised
    monkeypatch.setenv("CAIRN_PASSWORD", "not the password")
    assert "wrong password" in one_error_line(run_cli("snapshots", "--repo", url))


def test_a_missing_config_is_one_line(initialised, run_cli):
    url, store = initialised
    store.delete(layout.CONFIG)
    assert "the config object is missing" in one_error_line(run_cli("snapshots", "--repo", url))


def test_a_repository_without_keys_is_one_line(initialised, run_cli):
    url, store = initialised
    for name, _ in list(store.list(layout.KEYS)):
        store.delete(name)
    assert "the repository has no keys" in one_error_line(run_cli("snapshots", "--repo", url))
    store.delete(layout.CONFIG)
    err = one_error_line(run_cli("snapshots", "--repo", url))
    assert "is not a cairn repository (no config, no keys)" in err


# ------------------------------------------------------------------ the helper
def test_overlap_without_threads_calls_when_asked_and_keeps_the_error():
    calls: list[int] = []

    def call(n: int) -> int:
        calls.append(n)
        if n == 2:
            raise ValueError("two")
        return n * 10

    with Overlap(0) as o:
        first = o.start(call, 1)
        assert calls == []  # not yet: made when its result is asked for
        assert first.result() == 10 and first.result() == 10 and calls == [1]
        results = o.map(call, [2, 3])
        item, pending = next(results)
        assert item == 2
        with pytest.raises(ValueError, match="two"):
            pending.result()
        with pytest.raises(ValueError, match="two"):  # the same error, not a second call
            pending.result()
        assert [(n, p.result()) for n, p in results] == [(3, 30)] and calls == [1, 2, 3]


def test_overlap_with_threads_runs_calls_at_once_and_bounds_what_is_ahead():
    started: list[int] = []
    gate = threading.Event()

    def call(n: int) -> int:
        started.append(n)
        gate.wait(10)
        return n

    with Overlap(2) as o:
        results = o.map(call, range(10))
        first = next(results)  # four started (twice the threads), none taken
        deadline = time.monotonic() + 10
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(started) == 2  # both threads busy at once
        gate.set()
        assert first[1].result() == 0
        assert [p.result() for _, p in results] == list(range(1, 10))
