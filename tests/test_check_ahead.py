"""check reads pack headers, and with --read-data whole packs, several at a time (each read is
a round trip on an object store), and reports exactly what it reports reading one at a time."""

from __future__ import annotations

import os
import threading
import time

from cairn.core.overlap import Overlap
from cairn.ops.check import Checker, Subset
from cairn.ops.progress import NullProgress
from cairn.repo.repository import Repository
from cairn.storage.base import StorageWrapper
from cairn.storage.local import LocalStorage
from tests.craft import PASSWORD, create_repo


class SlowReads(StorageWrapper):
    """Every read waits a few milliseconds, as a round trip would; counts reads in flight."""

    def __init__(self, inner: LocalStorage) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self.in_flight = self.most = 0

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(0.005)
            return self.inner.read(name, offset, length)
        finally:
            with self._lock:
                self.in_flight -= 1


def check(path, threads: int, data_threads: int):  # type: ignore[no-untyped-def]
    store = SlowReads(LocalStorage(path))
    repo = Repository.open(store, PASSWORD)
    report = Checker(repo, NullProgress(), threads, data_threads).run(Subset())
    return report, store.most


def test_reads_ahead_and_reports_the_same(tmp_path, run_cli):
    repo = create_repo(tmp_path / "repo", pack_size=64 << 10)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}.bin").write_bytes(os.urandom(30_000 + i))
    assert run_cli("backup", "--repo", repo, src).code == 0
    packs = sorted(p for p in (repo / "data").rglob("*") if p.is_file())
    assert len(packs) > 15
    packs[3].write_bytes(packs[3].read_bytes()[:-100])  # truncated: its header is unreadable
    data = bytearray(packs[7].read_bytes())
    data[100] ^= 1  # a flipped bit in a blob: found only by reading the data
    packs[7].write_bytes(bytes(data))

    one_by_one, most = check(repo, 0, 0)
    assert most == 1
    ahead, most = check(repo, 8, 3)
    assert most > 1
    assert ahead.findings == one_by_one.findings and len(ahead.errors) >= 2
    assert (ahead.packs, ahead.packs_read, ahead.blobs_read, ahead.bytes_read) == (
        one_by_one.packs,
        one_by_one.packs_read,
        one_by_one.blobs_read,
        one_by_one.bytes_read,
    )
    assert ahead.damaged == one_by_one.damaged


def test_overlap_map_keeps_order_bounds_the_calls_and_hands_over_errors():
    started: list[int] = []
    lock = threading.Lock()

    def call(i: int) -> int:
        with lock:
            started.append(i)
        if i == 5:
            raise ValueError("five")
        return i * i

    for workers in (0, 4):
        started.clear()
        taken = []
        with Overlap(workers) as overlap:
            for i, pending in overlap.map(call, range(20), ahead=3):
                time.sleep(0.002)
                with lock:
                    assert len(started) <= i + 1 + (3 if workers else 0)
                try:
                    taken.append(pending.result())
                except ValueError as e:
                    taken.append(str(e))
        assert taken == [i * i if i != 5 else "five" for i in range(20)]
