"""A file's bytes at any offset from its blobs (the mount's reads), the bounded blob cache, and
read-ahead of sequential reads; without FUSE (tests/test_mount.py mounts for real)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import blake3
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.memory import trim_malloc
from cairn.model.node import FILE, Node
from cairn.ops.mount.blobcache import BlobCache
from cairn.ops.mount.content import FileContent, Zeros, stored_bytes


def _id(data: bytes | memoryview) -> bytes:
    return blake3.blake3(bytes(data)).digest()


class Store:
    """Blobs by id, counting the fetches."""

    def __init__(self) -> None:
        self.blobs: dict[bytes, bytes] = {}
        self.fetched: list[bytes] = []
        self.lock = threading.Lock()

    def add(self, data: bytes) -> bytes:
        self.blobs[_id(data)] = data
        return _id(data)

    def lengths(self, blob_id: bytes) -> tuple[int, int]:
        """Its length, and its length compressed as a backup stores it (plus the tag)."""
        data = self.blobs[blob_id]
        return len(data), min(len(data), len(zstandard.compress(data))) + 17

    def fetch(self, blob_id: bytes) -> bytes:
        with self.lock:
            self.fetched.append(blob_id)
        return self.blobs[blob_id]


def _file(store: Store, pieces: list[bytes]) -> Node:
    ids = [store.add(p) for p in pieces]
    return Node(name=b"f", type=FILE, mode=0o644, size=sum(map(len, pieces)), content=ids)


pieces = st.lists(
    st.one_of(st.binary(min_size=1, max_size=900), st.integers(1000, 5000).map(bytes)),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(pieces, st.lists(st.tuples(st.integers(0, 40_000), st.integers(1, 10_000)), max_size=20))
def test_reads_at_any_offset_are_the_file(
    chunks: list[bytes], reads: list[tuple[int, int]]
) -> None:
    store = Store()
    node = _file(store, chunks)
    whole = b"".join(chunks)
    cache = BlobCache(store.fetch, limit=5000)
    content = FileContent(node, store.lengths, cache, Zeros(_id))
    for offset, size in reads:
        assert content.read(offset, size) == whole[offset : offset + size]
        assert cache.held <= 5000
    # runs of zeros are holes; a few zero bytes (which hardly compress) are data
    zero_runs = sum(len(c) for c in chunks if not any(c) and len(c) >= 1000)
    assert content.stored_bytes() == len(whole) - zero_runs
    assert stored_bytes(node, store.lengths, Zeros(_id)) == len(whole) - zero_runs
    fetched_zeros = [
        b for b in store.fetched if len(store.blobs[b]) >= 1000 and not any(store.blobs[b])
    ]
    assert fetched_zeros == []  # runs of zeros are never fetched


def test_sequential_reads_fetch_the_next_blobs_ahead() -> None:
    store = Store()
    chunks = [bytes([i + 1]) * 1000 for i in range(20)]
    node = _file(store, chunks)
    cache = BlobCache(store.fetch, limit=1 << 20)
    with ThreadPoolExecutor(2) as pool:
        content = FileContent(node, store.lengths, cache, Zeros(_id), (pool, 5000))
        assert content.read(0, 500) == chunks[0][:500]
    # the first blob, and those of the next 5,000 bytes, were fetched; once each
    assert sorted(store.fetched) == sorted(node.content[:6])
    with ThreadPoolExecutor(2) as pool:
        other = FileContent(node, store.lengths, cache, Zeros(_id), (pool, 5000))
        store.fetched.clear()
        assert other.read(15_000, 10) == chunks[15][:10]  # not sequential: no read-ahead
    assert store.fetched == [node.content[15]]


def test_the_cache_fetches_a_blob_once_for_concurrent_readers() -> None:
    store = Store()
    blob = store.add(b"x" * 100)
    gate = threading.Event()

    def slow(blob_id: bytes) -> bytes:
        gate.wait()
        return store.fetch(blob_id)

    cache = BlobCache(slow, limit=1000)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get, blob) for _ in range(8)]
        gate.set()
        assert all(f.result() == b"x" * 100 for f in futures)
    assert store.fetched == [blob]


def test_the_cache_gives_memory_back_each_time_an_eighth_of_it_has_left() -> None:
    store = Store()
    blobs = [store.add(bytes([i]) * 100) for i in range(40)]
    released: list[int] = []
    cache = BlobCache(store.fetch, limit=1000, release=lambda: released.append(cache.held))
    for blob in blobs[:10]:
        cache.get(blob)
    assert released == []  # nothing has left yet
    for blob in blobs[10:]:
        cache.get(blob)
    # 3,000 bytes left, 100 at a time: memory given back once 125 had left, every second blob
    assert len(released) == 30 // 2
    assert cache.held == 1000


# Run in a process of its own, so that nothing else allocates meanwhile: small blobs (from
# malloc's heap, each followed there by something still live) fill the cache, then large ones
# (mappings of their own) push them out. Prints how much the resident memory grew (KiB).
_TURNOVER = """
import sys
from cairn.core.memory import trim_malloc, tune_malloc
from cairn.ops.mount.blobcache import BlobCache

def anon():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))

tune_malloc()
LIMIT = 32 << 20
live = []
def fetch(blob_id):
    live.append(bytes(1000))  # what else a fetch leaves in the heap
    return b"x" * (1 << 20 if blob_id[0] else 100 << 10)

cache = BlobCache(fetch, LIMIT, release=trim_malloc if sys.argv[1] == "trim" else None)
before = anon()
for i in range(2 * LIMIT // (100 << 10)):
    cache.get(b"\\0" + i.to_bytes(4, "big"))
for i in range(2 * LIMIT // (1 << 20)):
    cache.get(b"\\1" + i.to_bytes(4, "big"))
print(anon() - before)
"""


@pytest.mark.skipif(
    not os.path.exists("/proc/self/status") or not trim_malloc(), reason="glibc on Linux"
)
def test_blobs_that_left_the_cache_do_not_stay_resident() -> None:
    def grown(release: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _TURNOVER, release], capture_output=True, text=True, check=True
        )
        return int(out.stdout) << 10

    limit = 32 << 20
    # without giving memory back, the heap keeps the small blobs' pages: twice the cache
    assert grown("keep") > 1.6 * limit
    assert grown("trim") < 1.3 * limit
