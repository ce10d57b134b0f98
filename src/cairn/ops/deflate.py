"""Deflate on several cores, for the archives a download streams (.tar.gz, .zip).

Deflate and CRC-32 are ISA-L's (``isal.isal_zlib``: zlib's interface, standard deflate, with
the processor's vector and carry-less multiply instructions): its level 1 deflates text about
eight times as fast as zlib's, its CRC-32 is about nine times as fast. One stream still takes
one core: here the data is cut into pieces of about ``PIECE`` bytes, each compressed on a
thread of a pool (ISA-L's deflate and CRC-32 release the GIL), and taken back in order
(``InOrder``). Each piece is compressed by itself, as deflate blocks ended by a sync flush
(``deflate_piece``): concatenated, with ``END`` after the last, they are one deflate stream (a
zip entry's, a gzip member's). A piece of data that does not compress (as cairn knows from its
blobs, or a trial says) is stored: deflate's stored blocks, framed here, a copy (the callers do
that on their own thread: for a copy and a CRC-32, a hand-off to the pool cost more than it
saved); so a download of photos costs no compression. The CRC-32 of a stream made of pieces is
combined from theirs (``crc32_combine``).
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from isal import isal_zlib
from isal.isal_zlib import crc32
from isal.isal_zlib import crc32_combine as crc32_combine  # for the callers: pieces' CRC-32s

FAST = 1  # the level compressible data is deflated at: the fastest
STORE = 0  # incompressible data: stored blocks, no compression
PIECE = 1 << 20  # bytes compressed at a time, by one thread
TRIAL = 64 << 10  # bytes compressed to tell whether data of unknown kind compresses
TRIAL_RATIO = 0.9  # compressed to more than this much of its size: stored instead
END = b"\x03\x00"  # an empty final block (fixed Huffman codes), after sync-flushed pieces
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"  # no name, no time, fastest, OS unknown

STORED_BLOCK = 0xFFFF  # the most a stored block holds
_STORED_HEAD = struct.Struct("<BHH")  # not final, stored; its length and the length's complement
T = TypeVar("T")


def threads() -> int:
    return max(2, os.cpu_count() or 1)


Data = list[bytes | memoryview]  # a piece: its parts, compressed one after the other


def level_of(data: Data, compressible: bool | None) -> int:
    """The level for ``data``: FAST if it compresses (``compressible``, or if unknown (None),
    a trial on its start), STORE if not."""
    if compressible is None:
        c = isal_zlib.compressobj(FAST, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
        tried = size = 0
        for part in data:
            sample = part[: TRIAL - tried]
            tried += len(sample)
            size += len(c.compress(sample))
            if tried >= TRIAL:
                break
        size += len(c.flush())
        compressible = size <= TRIAL_RATIO * tried
    return FAST if compressible else STORE


def _stored_blocks(data: Data) -> tuple[Data, int, int]:
    """``data`` as deflate's stored blocks, not final (what level 0 makes, without its copies
    through a window); its CRC-32 and length."""
    out: Data = []
    crc = n = 0
    for part in data:
        view = memoryview(part)
        for at in range(0, len(view), STORED_BLOCK):
            block = view[at : at + STORED_BLOCK]
            out += (_STORED_HEAD.pack(0, len(block), len(block) ^ 0xFFFF), block)
        crc = crc32(part, crc)
        n += len(part)
    return out, crc, n


def deflate_piece(data: Data, compressible: bool | None) -> tuple[bytes, int, int]:
    """``data`` as raw deflate blocks ending on a byte boundary (a sync flush), not final
    (``END`` ends the stream they begin); its CRC-32 and length."""
    if level_of(data, compressible) == STORE:
        out, crc, n = _stored_blocks(data)
        return b"".join(out), crc, n
    c = isal_zlib.compressobj(FAST, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
    parts: list[bytes] = []
    crc = n = 0
    for part in data:
        parts.append(c.compress(part))
        crc = crc32(part, crc)
        n += len(part)
    parts.append(c.flush(isal_zlib.Z_SYNC_FLUSH))
    return b"".join(parts), crc, n


def crc_piece(data: Data) -> tuple[Data, int, int]:
    """``data`` as it is (stored), its CRC-32 and length."""
    crc, n = 0, 0
    for part in data:
        crc = crc32(part, crc)
        n += len(part)
    return data, crc, n


# ---------------------------------------------------------------------- in order
class InOrder(Generic[T]):
    """Work done on a pool of threads, its results handed to ``take`` in the order the work was
    given, on the giver's thread; at most ``ahead`` pieces of work given and not yet taken."""

    def __init__(self, take: Callable[[T], None], ahead: int = 0) -> None:
        n = threads()
        self._take = take
        self._ahead = ahead or 2 * n
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="cairn-deflate")
        self._pending: deque[Future[T]] = deque()

    def submit(self, fn: Callable[..., T], *args: object) -> None:
        self._pending.append(self._pool.submit(fn, *args))
        self._settle()

    def ready(self, result: T) -> None:
        """A result that needs no work, taken after those given before it."""
        if not self._pending:
            self._take(result)
            return
        f: Future[T] = Future()
        f.set_result(result)
        self._pending.append(f)
        self._settle()

    def _settle(self) -> None:
        pending = self._pending
        while pending and (len(pending) > self._ahead or pending[0].done()):
            self._take(pending.popleft().result())

    def finish(self) -> None:
        """Takes every result still to come."""
        while self._pending:
            self._take(self._pending.popleft().result())

    def close(self) -> None:
        """Drops the work not started (after a failure), waits for what runs."""
        for f in self._pending:
            f.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class Pieces:
    """Data written in parts of any size, gathered into pieces of at least ``PIECE`` bytes
    (their parts not copied), each with whether it compresses: by the bytes of most of it
    (True, False, or None: not known)."""

    def __init__(self) -> None:
        self._parts: Data = []
        self._size = 0
        self._kinds = {True: 0, False: 0, None: 0}

    def add(self, data: bytes | memoryview, compressible: bool | None) -> None:
        self._parts.append(data)
        self._size += len(data)
        self._kinds[compressible] += len(data)

    @property
    def full(self) -> bool:
        return self._size >= PIECE

    def __len__(self) -> int:
        return self._size

    def take(self) -> tuple[Data, bool | None]:
        data = self._parts
        kind = max(self._kinds, key=lambda k: self._kinds[k])
        self._parts, self._size = [], 0
        self._kinds = {True: 0, False: 0, None: 0}
        return data, kind
