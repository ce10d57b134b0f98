"""All-zero content, which costs a restore nothing: the blob a run of zeros is cut into, known
by its id without being read, and the zeros inside other blobs, left as holes.

The chunker cuts a run of zeros longer than its largest chunk into chunks of one size (the
same for every run: FastCDC's hash of zeros never changes), and identical chunks have one id,
so the blob of a file's holes is one id, met again and again. ``ZeroBlob`` knows that id (the
repository's chunker and key make it): a restore skips it (the file is created empty and its
size set at the end), a dump leaves it out of a sparse tar member. Other blobs are written
with their blocks of zeros skipped (``write_data``), so that the holes a chunk straddles stay
holes too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property

from cairn.model.chunker import Chunker
from cairn.repo.config import ChunkerParams
from cairn.repo.limits import MAX_DATA_BLOB

HOLE_BLOCK = 32 << 10  # blocks of zeros this size (aligned in the file) are left as holes

_ZEROS = bytes(MAX_DATA_BLOB)  # untouched pages: it costs no memory


def zeros(n: int) -> memoryview:
    """``n`` zero bytes (a view of a shared buffer: read-only, never copied)."""
    if n <= len(_ZEROS):
        return memoryview(_ZEROS)[:n]
    return memoryview(bytes(n))


def is_zero(data: bytes | memoryview) -> bool:
    """Whether ``data`` is all zeros (a memcmp: memoryview's own comparison is per byte)."""
    if len(data) <= len(_ZEROS):
        return _ZEROS.startswith(data)
    view = memoryview(data)
    step = len(_ZEROS)
    return all(_ZEROS.startswith(view[i : i + step]) for i in range(0, len(view), step))


def write_data(fd: int, data: bytes | memoryview, offset: int) -> tuple[int, int]:
    """Writes ``data`` at ``offset`` in a file created empty, its blocks of zeros (``HOLE_BLOCK``,
    aligned in the file) left as holes: (bytes written, end of the last bytes written, or 0)."""
    if isinstance(data, memoryview) and data.obj is _ZEROS:
        return 0, 0  # from ``zeros``: a blob known to be zeros
    view = memoryview(data)
    n = len(view)
    written = end = 0
    run = -1  # start of the data not yet written
    at = 0
    while at < n:
        stop = min(n, at + HOLE_BLOCK - (offset + at) % HOLE_BLOCK)
        if view[at] or view[stop - 1] or not _ZEROS.startswith(view[at:stop]):
            if run < 0:
                run = at
        elif run >= 0:
            written += _pwrite(fd, view[run:at], offset + run)
            end, run = offset + at, -1
        at = stop
    if run >= 0:
        written += _pwrite(fd, view[run:], offset + run)
        end = offset + n
    return written, end


def _pwrite(fd: int, view: memoryview, pos: int) -> int:
    n = len(view)
    while view:
        k = os.pwrite(fd, view, pos)
        view, pos = view[k:], pos + k
    return n


class ZeroBlob:
    """The id of the blob a run of zeros is cut into, worked out on first use (a chunking of
    zeros and a hash: a few milliseconds)."""

    def __init__(self, params: ChunkerParams, blob_id: Callable[[bytes | memoryview], bytes]):
        self._params = params
        self._blob_id = blob_id

    @cached_property
    def size(self) -> int:
        chunker = Chunker(self._params)
        return len(next(chunker.chunks_of(zeros(2 * self._params.max_size))))

    @cached_property
    def id(self) -> bytes:
        return self._blob_id(zeros(self.size))

    def matches(self, blob_id: bytes, raw_length: int) -> bool:
        """Whether the blob ``blob_id`` of ``raw_length`` bytes is all zeros."""
        return (
            raw_length >= self._params.min_size and raw_length == self.size and (blob_id == self.id)
        )
