"""Object and blob identifiers: 32 raw bytes, shown as 64 lowercase hex digits."""

from __future__ import annotations

ID_LEN = 32


def to_hex(raw: bytes) -> str:
    return raw.hex()


def from_hex(text: str) -> bytes:
    raw = bytes.fromhex(text)
    if len(raw) != ID_LEN:
        raise ValueError(f"an id has {ID_LEN * 2} hex digits, got {len(text)}")
    return raw


def short(raw: bytes | str) -> str:
    return (raw if isinstance(raw, str) else raw.hex())[:8]
