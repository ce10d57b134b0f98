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

HOLE_BLOCK = 4 << 10  # blocks of zeros this size (aligned in the file: the block of the common
# Linux file systems) are left as holes, so a sparse file takes what it took on the source

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
    aligned in the file) left as holes: (bytes written, end of the last bytes written, or 0).

    Only a block that begins with a zero byte can be all zeros, and the first bytes of all the
    blocks are gathered in one strided copy: random data (one block in 256 begins with a zero)
    costs a few comparisons per chunk, not a Python step per block."""
    if isinstance(data, memoryview) and data.obj is _ZEROS:
        return 0, 0  # from ``zeros``: a blob known to be zeros
    view = memoryview(data)
    n = len(view)
    head = min(n, -offset % HOLE_BLOCK)  # bytes before the first block boundary in the file
    holes: list[tuple[int, int]] = []  # (start, stop) of the blocks of zeros, ascending
    if head and _is_zero_block(view, 0, head):
        holes.append((0, head))
    firsts = view[head::HOLE_BLOCK].tobytes() if head < n else b""
    i = firsts.find(0)
    while i >= 0:
        at = head + i * HOLE_BLOCK
        stop = min(n, at + HOLE_BLOCK)
        if _is_zero_block(view, at, stop):
            holes.append((at, stop))
        i = firsts.find(0, i + 1)
    written = end = 0
    run = 0  # start of the data not yet written
    for at, stop in holes:
        if at > run:
            written += _pwrite(fd, view[run:at], offset + run)
            end = offset + at
        run = stop
    if run < n:
        written += _pwrite(fd, view[run:], offset + run)
        end = offset + n
    return written, end


def _is_zero_block(view: memoryview, at: int, stop: int) -> bool:
    return not view[at] and not view[stop - 1] and _ZEROS.startswith(view[at:stop])


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
