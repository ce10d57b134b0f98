"""A file of a snapshot read at any offset: which of its blobs hold the range, read through
the shared ``BlobCache``. A blob of zeros (the holes of a sparse file are cut into such blobs,
a run's last piece shorter) is never fetched: its bytes are made here, and it does not count
towards the blocks the file is said to use.

Sequential reads are read ahead: when a read starts where the last one ended, the blobs of the
next ``ahead`` bytes are fetched into the cache on the shared read-ahead threads, so a program
copying a file waits for the store once rather than once per blob."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from concurrent.futures import Executor

from cairn.core.errors import NotFoundError
from cairn.model.node import Node
from cairn.ops.mount.blobcache import BlobCache
from cairn.ops.restore.zeros import zeros

# a blob's length and its stored (compressed, encrypted) length, None if the index lacks it
Lengths = Callable[[bytes], tuple[int, int] | None]
SQUEEZE = 16  # a run of zeros is stored in at most a 16th of its length (zstd: far less)


class Zeros:
    """Whether a blob is a run of zeros: one that compressed well (else it cannot be) whose id
    is that of as many zeros (the ids of the lengths such runs come in kept)."""

    def __init__(self, blob_id: Callable[[bytes | memoryview], bytes]) -> None:
        self._id = functools.lru_cache(maxsize=256)(lambda n: blob_id(zeros(n)))

    def matches(self, blob_id: bytes, raw_length: int, stored: int) -> bool:
        return stored * SQUEEZE <= raw_length and self._id(raw_length) == blob_id


def stored_bytes(node: Node, lengths: Lengths, zero: Zeros) -> int:
    """Bytes of the file that are not holes (what ``st_blocks`` counts), without the map of its
    blobs that reads need (a listing asks it of every file)."""
    total = 0
    for blob_id in node.content:
        found = lengths(blob_id)
        if found is None:
            raise NotFoundError(f"blob {blob_id.hex()} is not in the index")
        if not zero.matches(blob_id, *found):
            total += found[0]
    return total


class FileContent:
    def __init__(
        self,
        node: Node,
        lengths: Lengths,
        cache: BlobCache,
        zero: Zeros,
        ahead: tuple[Executor, int] | None = None,
    ):
        """``ahead``: the read-ahead threads and the bytes read ahead of a sequential read."""
        self.node = node
        self._cache = cache
        self._ahead = ahead
        self._last_end = 0  # where the last read ended
        self._requested = 0  # blobs before this one are fetched, or being fetched
        self._starts: list[int] = []
        self._lengths: list[int] = []
        self._holes: list[bool] = []
        at = 0
        for blob_id in node.content:
            found = lengths(blob_id)
            if found is None:
                raise NotFoundError(f"blob {blob_id.hex()} is not in the index")
            length, stored = found
            self._starts.append(at)
            self._lengths.append(length)
            self._holes.append(zero.matches(blob_id, length, stored))
            at += length
        self.size = at

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer at the end of the file)."""
        end = min(offset + size, self.size)
        if offset >= end:
            return b""
        out = []
        i = bisect.bisect_right(self._starts, offset) - 1
        sequential, self._last_end = offset == self._last_end, end
        if sequential and self._ahead is not None:
            self._read_ahead(i, end)
        while offset < end:
            start, length = self._starts[i], self._lengths[i]
            lo, hi = offset - start, min(end - start, length)
            if self._holes[i]:
                out.append(bytes(hi - lo))
            else:
                out.append(self._cache.get(self.node.content[i])[lo:hi])
            offset = start + hi
            i += 1
        return b"".join(out)

    def _read_ahead(self, first: int, end: int) -> None:
        """Starts fetching the blobs from the one at ``first`` up to ``ahead`` bytes past
        ``end`` (those not already started)."""
        assert self._ahead is not None
        pool, budget = self._ahead
        i = max(first + 1, self._requested)
        while i < len(self._starts) and self._starts[i] < end + budget:
            if not self._holes[i]:
                pool.submit(self._prefetch, self.node.content[i])
            i += 1
        self._requested = max(self._requested, i)

    def _prefetch(self, blob_id: bytes) -> None:
        try:
            self._cache.get(blob_id)
        except Exception:  # the read that needs the blob fetches it again, and reports
            pass

    def stored_bytes(self) -> int:
        """Bytes of the file that are not holes (what ``st_blocks`` counts)."""
        return sum(n for n, hole in zip(self._lengths, self._holes, strict=True) if not hole)
