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

import functools
import struct
from collections.abc import Iterable
from typing import NamedTuple

import msgpack

from cairn.crypto import aead
from cairn.repo.packsink import MemorySink, PackSink
from cairn.storage.base import Content

MAGIC = b"CAIRNPK\x01"
PREFIX_LEN = len(MAGIC) + aead.SALT_LEN
TAIL_LEN = 4 + len(MAGIC)
HEADER_BYTES_PER_BLOB = 64  # a blob's row in the pack header: 50 bytes, 62 with 64-bit offsets


class PackFormatError(ValueError):
    pass


class BlobRef(NamedTuple):
    """Where a blob is in its pack. A named tuple, not a dataclass: the index makes one per
    blob of the repository when it is loaded, three times faster."""

    id: bytes
    offset: int
    length: int
    raw_length: int


def blob_aad(blob_type: int, blob_id: bytes) -> bytes:
    return bytes([blob_type]) + blob_id


class PackBuilder:
    """Encrypts blobs straight into a pack sink (cairn.repo.packsink: a buffer in memory by
    default, or a temporary file) until the pack is finished."""

    def __init__(self, master_key: bytes, blob_type: int, sink: PackSink | None = None) -> None:
        self.blob_type = blob_type
        self.salt = aead.new_salt()
        self._cipher = aead.derive(master_key, self.salt, b"pack")
        self.sink: PackSink = sink if sink is not None else MemorySink()
        self.sink.write(MAGIC + self.salt)
        self.blobs: list[BlobRef] = []

    def __len__(self) -> int:
        return len(self.sink)

    def size_with(self, plaintext_length: int) -> int:
        """The pack's size, at most, if one more blob of ``plaintext_length`` were added and
        the pack finished."""
        return _size_with(len(self.sink), len(self.blobs), plaintext_length)

    def add(self, blob_id: bytes, plaintext: bytes | memoryview, raw_length: int) -> BlobRef:
        """``plaintext`` is the framed payload (mode byte and data)."""
        offset = len(self.sink)
        length = len(plaintext) + aead.TAG_LEN
        aad = bytes((self.blob_type,)) + blob_id
        sink = self.sink
        if isinstance(sink, MemorySink):  # the common case, without a context manager per blob
            view = sink.take(length)
            try:
                nonce = offset.to_bytes(aead.NONCE_LEN, "big")
                self._cipher.encrypt_into(nonce, plaintext, aad, view)
            finally:
                view.release()
        else:
            with sink.room(length) as view:
                aead.seal_into(self._cipher, offset, plaintext, aad, view)
        ref = BlobRef(blob_id, offset, length, raw_length)
        self.blobs.append(ref)
        return ref

    def finish(self) -> tuple[bytes, Content]:
        """Writes the header: (pack id, the pack), which stays valid until the sink is closed
        (the builder does not copy it)."""
        table = [[b.id, b.offset, b.length, b.raw_length] for b in self.blobs]
        header = msgpack.packb([self.blob_type, table])
        sealed = aead.seal(self._cipher, aead.HEADER_NONCE_FLAG, header, MAGIC)
        self.sink.write(sealed + struct.pack("<I", len(sealed)) + MAGIC)
        return self.sink.finish()


def _size_with(written: int, blobs: int, plaintext_length: int) -> int:
    header = 16 + HEADER_BYTES_PER_BLOB * (blobs + 1) + aead.TAG_LEN
    return written + plaintext_length + aead.TAG_LEN + header + TAIL_LEN


def packs_for(lengths: Iterable[int], pack_size: int) -> int:
    """How many packs the packer fills with blobs of these stored lengths (one type, in this
    order): a blob goes into the open pack while the finished pack stays within
    ``pack_size`` (PackBuilder.size_with), and a pack holds at least one blob."""
    packs = written = blobs = 0
    for length in lengths:
        plaintext = length - aead.TAG_LEN
        if not blobs or _size_with(written, blobs, plaintext) > pack_size:
            packs, written, blobs = packs + 1, PREFIX_LEN, 0
        written += length
        blobs += 1
    return packs


@functools.lru_cache(maxsize=256)
def pack_cipher(master_key: bytes, salt: bytes) -> aead.AESGCM:
    """The key of a stored pack, derived once for all the blobs read from it."""
    return aead.derive(master_key, salt, b"pack")


def open_blob(
    master_key: bytes, salt: bytes, blob_type: int, blob_id: bytes, offset: int, sealed: bytes
) -> bytes:
    """Decrypts one blob read from a pack; raises aead.AuthenticationFailed."""
    cipher = pack_cipher(master_key, salt)
    return aead.unseal(cipher, offset, sealed, blob_aad(blob_type, blob_id))


def open_blob_into(
    master_key: bytes,
    salt: bytes,
    blob_type: int,
    blob_id: bytes,
    offset: int,
    sealed: bytes | memoryview,
    out: memoryview,
) -> None:
    """``open_blob``, decrypted into ``out`` (``len(sealed) - TAG_LEN`` bytes)."""
    cipher = pack_cipher(master_key, salt)
    aead.unseal_into(cipher, offset, sealed, blob_aad(blob_type, blob_id), out)


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
    cipher = pack_cipher(master_key, salt)
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
