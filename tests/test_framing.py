"""Blob framing: what ``frame_into`` writes to its reused buffer round-trips, is compressed
only when that saves at least 1/32, and compresses as well as zstd's one-shot API (large
blobs go through zstd's stream writer, whose frames may differ in their bytes)."""

from __future__ import annotations

import os

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.repo.compress import MIN_SAVING, RAW, ZSTD, frame_into, pack_payload, unpack_payload

LOG = b"".join(
    b"2026-11-22 05:%02d:%02d GET /index.html 200\n" % (i // 60, i % 60) for i in range(3600)
)


def reference(data: bytes, level: int | None) -> bytes:
    """The framing with zstd's one-shot API, written out plainly."""
    if level is not None and len(data) >= 64:
        packed = zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)
        if len(packed) <= len(data) * (1 - MIN_SAVING):
            return bytes([ZSTD]) + packed
    return bytes([RAW]) + data


def sample(kind: str, size: int) -> bytes:
    if kind == "random":
        return os.urandom(size)
    if kind == "text":
        return (LOG * (size // len(LOG) + 1))[:size]
    half = size // 2  # incompressible first half, compressible second half
    return os.urandom(half) + (LOG * (size // len(LOG) + 1))[: size - half]


@settings(max_examples=60, deadline=None)
@given(
    blobs=st.lists(
        st.tuples(st.sampled_from(["random", "text", "mixed"]), st.integers(0, 1_500_000)),
        min_size=1,
        max_size=5,
    ),
    level=st.sampled_from([None, 1, 3]),
)
def test_frame_into_matches_pack_payload_and_round_trips(blobs, level):
    for kind, size in blobs:
        data = sample(kind, size)
        framed = bytes(frame_into(data, level))
        assert framed == pack_payload(data, level)
        plain = reference(data, level)
        if framed[0] == ZSTD and plain[0] == ZSTD:
            assert abs(len(framed) - len(plain)) <= len(plain) // 100 + 64
        assert unpack_payload(framed, len(data)) == data
        if framed[0] == ZSTD:
            assert len(framed) - 1 <= len(data) * (1 - MIN_SAVING)
        else:
            assert framed[0] == RAW


def test_incompressible_data_is_stored_raw_and_text_compressed():
    assert frame_into(os.urandom(1 << 20))[0] == RAW
    assert frame_into(sample("text", 1 << 20))[0] == ZSTD
    assert frame_into(sample("text", 1 << 20), None)[0] == RAW


def test_a_blob_larger_than_the_scratch_buffer():
    data = sample("mixed", 9 << 20)
    assert unpack_payload(bytes(frame_into(data)), len(data)) == data
