"""Blob payload framing and zstd compression.

A blob's plaintext is one mode byte followed by the payload:
0 = stored as is, 1 = a zstd frame (with the content size in its header).
Compression is kept only when it saves at least ``MIN_SAVING`` of the size, so incompressible
data (photos, video, archives) costs one fast zstd pass and is stored raw.
"""

from __future__ import annotations

import threading

import zstandard

RAW = 0
ZSTD = 1
MIN_SAVING = 1 / 32
_RAW_BYTE = bytes([RAW])
_ZSTD_BYTE = bytes([ZSTD])
DEFAULT_LEVEL = 3

_local = threading.local()


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
    if level is not None and len(data) >= 64:
        packed = _compressor(level).compress(data)
        if len(packed) <= len(data) * (1 - MIN_SAVING):
            return b"".join((_ZSTD_BYTE, packed))
    return b"".join((_RAW_BYTE, data))  # one copy, also from a memoryview


class PayloadError(ValueError):
    pass


def unpack_payload(payload: bytes) -> bytes:
    if not payload:
        raise PayloadError("empty blob payload")
    mode = payload[0]
    if mode == RAW:
        return payload[1:]
    if mode == ZSTD:
        try:
            return _decompressor().decompress(memoryview(payload)[1:])
        except zstandard.ZstdError as e:
            raise PayloadError(f"zstd: {e}") from None
    raise PayloadError(f"unknown compression mode {mode}")
