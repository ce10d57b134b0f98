"""Pack files: many encrypted blobs of one type in one object.

Layout (all integers little-endian; see docs/format.md, "Packs"):

    magic    8 bytes   b"CAIRNPK" + version byte 0x01
    salt     32 bytes  HKDF salt of this pack's key
    blob*    each      AES-256-GCM(key, nonce=offset, aad=type byte || blob id)
    header   n bytes   AES-256-GCM(key, nonce=2**95, aad=magic) of a msgpack list
                       [type, [[id, offset, length, raw_length], ...]]
    n        4 bytes   length of the encrypted header
    magic    8 bytes   again, so a truncated pack is recognised from its tail

The pack id is the BLAKE3 hash (unkeyed) of the whole pack.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import blake3
import msgpack

from cairn.crypto import aead

MAGIC = b"CAIRNPK\x01"
PREFIX_LEN = len(MAGIC) + aead.SALT_LEN
TAIL_LEN = 4 + len(MAGIC)


class PackFormatError(ValueError):
    pass


@dataclass(frozen=True)
class BlobRef:
    id: bytes
    offset: int
    length: int
    raw_length: int


def blob_aad(blob_type: int, blob_id: bytes) -> bytes:
    return bytes([blob_type]) + blob_id


class PackBuilder:
    """Accumulates encrypted blobs in memory until the pack is finished."""

    def __init__(self, master_key: bytes, blob_type: int) -> None:
        self.blob_type = blob_type
        self.salt = aead.new_salt()
        self._cipher = aead.derive(master_key, self.salt, b"pack")
        self._buf = bytearray(MAGIC + self.salt)
        self.blobs: list[BlobRef] = []

    def __len__(self) -> int:
        return len(self._buf)

    def add(self, blob_id: bytes, payload: bytes, raw_length: int) -> BlobRef:
        offset = len(self._buf)
        sealed = aead.seal(self._cipher, offset, payload, blob_aad(self.blob_type, blob_id))
        self._buf += sealed
        ref = BlobRef(blob_id, offset, len(sealed), raw_length)
        self.blobs.append(ref)
        return ref

    def finish(self) -> tuple[bytes, bytearray]:
        """Returns (pack id, pack bytes); the buffer is handed over, not copied."""
        table = [[b.id, b.offset, b.length, b.raw_length] for b in self.blobs]
        header = msgpack.packb([self.blob_type, table])
        sealed = aead.seal(self._cipher, aead.HEADER_NONCE_FLAG, header, MAGIC)
        self._buf += sealed + struct.pack("<I", len(sealed)) + MAGIC
        data, self._buf = self._buf, bytearray()
        return blake3.blake3(data).digest(), data


def open_blob(
    master_key: bytes, salt: bytes, blob_type: int, blob_id: bytes, offset: int, sealed: bytes
) -> bytes:
    """Decrypts one blob read from a pack; raises aead.AuthenticationFailed."""
    cipher = aead.derive(master_key, salt, b"pack")
    return aead.unseal(cipher, offset, sealed, blob_aad(blob_type, blob_id))


def header_length(tail: bytes) -> int:
    if len(tail) < TAIL_LEN or tail[-len(MAGIC) :] != MAGIC:
        raise PackFormatError("pack does not end with the pack magic (truncated?)")
    return int(struct.unpack("<I", tail[-TAIL_LEN : -len(MAGIC)])[0])


def parse_header(
    master_key: bytes, salt: bytes, tail: bytes, pack_size: int
) -> tuple[int, list[BlobRef]]:
    """The blob type and table of a pack of ``pack_size`` bytes from its last bytes ``tail``
    (at least ``TAIL_LEN + header length`` of them). Raises PackFormatError."""
    n = header_length(tail[-TAIL_LEN:])
    start = pack_size - TAIL_LEN - n
    if start < PREFIX_LEN or len(tail) < TAIL_LEN + n:
        raise PackFormatError("pack header length out of range")
    sealed = tail[len(tail) - TAIL_LEN - n : len(tail) - TAIL_LEN]
    cipher = aead.derive(master_key, salt, b"pack")
    try:
        header = aead.unseal(cipher, aead.HEADER_NONCE_FLAG, sealed, MAGIC)
    except aead.AuthenticationFailed:
        raise PackFormatError("pack header failed authentication") from None
    try:
        blob_type, table = msgpack.unpackb(header)
        blobs = [BlobRef(bytes(i), o, ln, r) for i, o, ln, r in table]
    except (ValueError, TypeError) as e:
        raise PackFormatError(f"malformed pack header: {e}") from None
    for b in blobs:
        if b.offset < PREFIX_LEN or b.offset + b.length > start:
            raise PackFormatError("pack header points outside the pack")
    return blob_type, blobs


def parse_pack(master_key: bytes, data: bytes) -> tuple[bytes, int, list[BlobRef]]:
    """Reads a whole pack's header: (salt, blob type, blobs). Raises PackFormatError."""
    if len(data) < PREFIX_LEN + TAIL_LEN or data[: len(MAGIC)] != MAGIC:
        raise PackFormatError("not a pack (bad magic or too short)")
    salt = data[len(MAGIC) : PREFIX_LEN]
    blob_type, blobs = parse_header(master_key, salt, data, len(data))
    return salt, blob_type, blobs
