"""Blob payload framing and zstd compression.

A blob's plaintext is one mode byte followed by the payload:
0 = stored as is, 1 = a zstd frame (with the content size in its header).
Compression is kept only when it saves at least ``MIN_SAVING`` of the size, so incompressible
data (photos, video, archives) costs one fast zstd pass and is stored raw.

Backups frame blobs into a buffer each thread keeps (``frame_into``): a megabyte-sized chunk
then costs no fresh allocation, whose pages the kernel would fault in and zero one by one.
"""

from __future__ import annotations

import threading
from typing import Any

import zstandard

from cairn.core.memory import ThreadBuffer

RAW = 0
ZSTD = 1
MIN_SAVING = 1 / 32
DEFAULT_LEVEL = 3
SCRATCH_SIZE = (4 << 20) + (64 << 10)  # the largest chunk, its mode byte, and room to spare
_STREAM_FROM = 256 << 10  # below this, zstd's own output buffer comes cheaply from the heap

_local = threading.local()
_SCRATCH = ThreadBuffer(SCRATCH_SIZE)


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = _local.__dict__.setdefault("compressors", {})
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def pack_payload(data: bytes | memoryview, level: int | None = DEFAULT_LEVEL) -> bytes:
    """Mode byte + payload, compressed when that pays off (``level=None`` disables it)."""
    return bytes(frame_into(data, level))


def frame_into(data: bytes | memoryview, level: int | None = DEFAULT_LEVEL) -> memoryview:
    """Mode byte + payload, compressed when that pays off, in this thread's scratch buffer:
    the view is valid until the thread's next call."""
    n = len(data)
    scratch = _SCRATCH.get(n + 1)  # a very large tree blob gets one of its own
    if level is not None and n >= 64:
        limit = int(n * (1 - MIN_SAVING))  # the most compressed bytes worth keeping
        if n >= _STREAM_FROM:
            end = _compress_into(_compressor(level), data, scratch, limit)
        else:
            packed = _compressor(level).compress(data)
            end = 0
            if len(packed) <= limit:
                end = 1 + len(packed)
                scratch[1:end] = packed
        if end:
            scratch[0] = ZSTD
            return scratch[:end]
    scratch[0] = RAW
    scratch[1 : n + 1] = data
    return scratch[: n + 1]


class _Sink:
    """The file zstd's stream writer writes to: the scratch buffer after the mode byte. Output
    past ``end`` is only counted (aborting the writer would leave its context unusable)."""

    __slots__ = ("end", "pos", "view")

    def __init__(self, view: memoryview, end: int) -> None:
        self.view, self.pos, self.end = view, 1, end

    def write(self, b: Any) -> int:
        n = len(b)
        if self.pos + n <= self.end:
            self.view[self.pos : self.pos + n] = b
        self.pos += n
        return n


def _compress_into(
    c: zstandard.ZstdCompressor, data: bytes | memoryview, scratch: memoryview, limit: int
) -> int:
    """Compresses ``data`` to ``scratch[1:]``; returns where it ends, or 0 if longer than
    ``limit`` bytes."""
    sink = _Sink(scratch, 1 + limit)
    with c.stream_writer(sink, size=len(data), closefd=False) as w:
        w.write(data)
    return sink.pos if sink.pos <= sink.end else 0


class PayloadError(ValueError):
    pass


def unpack_payload(payload: bytes | memoryview, limit: int) -> bytes:
    """The data of a framed object of at most ``limit`` bytes (a zstd frame must declare its
    size, and nothing larger is ever decompressed)."""
    view = memoryview(payload)
    if not view:
        raise PayloadError("empty payload")
    size = len(view) - 1 if view[0] == RAW else _declared_size(view)
    if size > limit:
        raise PayloadError(f"holds {size} bytes, more than the {limit} its kind may have")
    data = unpack_view(view, size)
    return data if isinstance(data, bytes) else bytes(data)


def unpack_view(payload: memoryview, size: int, limit: int | None = None) -> memoryview | bytes:
    """The data of a framed blob, which must be exactly ``size`` bytes (at most ``limit``): a
    zstd frame must declare that size, and nothing more is decompressed. A stored payload is
    returned as a view of ``payload``, not copied."""
    if not payload:
        raise PayloadError("empty blob payload")
    if limit is not None and size > limit:
        raise PayloadError(f"its length {size} is more than a blob of its type may have ({limit})")
    mode = payload[0]
    if mode == RAW:
        if len(payload) - 1 != size:
            raise PayloadError(f"holds {len(payload) - 1} bytes, expected {size}")
        return payload[1:]
    if mode == ZSTD:
        declared = _declared_size(payload)
        if declared != size:
            raise PayloadError(f"zstd frame declares {declared} bytes, expected {size}")
        try:
            # zstd writes into a buffer of the declared size and fails if the frame holds more
            return _decompressor().decompress(payload[1:])
        except zstandard.ZstdError as e:
            raise PayloadError(f"zstd: {e}") from None
    raise PayloadError(f"unknown compression mode {mode}")


def _declared_size(payload: memoryview) -> int:
    """The content size a framed payload's zstd frame header declares."""
    if payload[0] != ZSTD:
        raise PayloadError(f"unknown compression mode {payload[0]}")
    try:
        size = zstandard.frame_content_size(payload[1:])
    except zstandard.ZstdError as e:
        raise PayloadError(f"zstd: {e}") from None
    if size < 0:
        raise PayloadError("zstd frame does not declare its content size")
    return int(size)
