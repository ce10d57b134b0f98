"""Authenticated encryption of repository objects and of blobs inside packs.

Construction (see docs/format.md, "Encryption"):

- Every encrypted unit uses a fresh 256-bit key derived with HKDF-SHA256 from the master
  encryption key and a random 32-byte salt stored beside the ciphertext. A pack derives one key
  for all its blobs; a standalone object (config, index, snapshot) derives its own.
- Under a derived key, the 96-bit AES-256-GCM nonce is a big-endian integer: a blob uses its
  byte offset in the pack (distinct for every blob), the pack header uses ``2**95``, a
  standalone object uses 0. Nonces never repeat under one key, and a key repeats only if two
  random 256-bit salts collide.
- The additional data binds each ciphertext to what it claims to be (object kind, blob id).
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SALT_LEN = 32
TAG_LEN = 16
NONCE_LEN = 12
HEADER_NONCE_FLAG = 1 << 95
ENVELOPE_VERSION = 1


class AuthenticationFailed(Exception):
    """The ciphertext, its salt or its additional data were altered, or the key is wrong."""


class EnvelopeError(ValueError):
    """Not an object envelope this version understands (too short, unknown version)."""


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_LEN)


def derive_key(master: bytes, salt: bytes | None, purpose: bytes) -> bytes:
    """HKDF-SHA256 of ``master``, info ``cairn v1 <purpose>``: 32 bytes (no salt: HKDF's
    default, 32 zero bytes)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"cairn v1 " + purpose)
    return hkdf.derive(master)


def derive(master: bytes, salt: bytes, purpose: bytes) -> AESGCM:
    return AESGCM(derive_key(master, salt, purpose))


def counter_nonce(n: int) -> bytes:
    return n.to_bytes(NONCE_LEN, "big")


def seal(cipher: AESGCM, nonce: int, plaintext: bytes | memoryview, aad: bytes) -> bytes:
    return cipher.encrypt(counter_nonce(nonce), plaintext, aad)


def seal_into(
    cipher: AESGCM, nonce: int, plaintext: bytes | memoryview, aad: bytes, out: memoryview
) -> None:
    """``seal``, written to ``out`` (exactly ``len(plaintext) + TAG_LEN`` bytes)."""
    cipher.encrypt_into(counter_nonce(nonce), plaintext, aad, out)


def unseal(cipher: AESGCM, nonce: int, ciphertext: bytes | memoryview, aad: bytes) -> bytes:
    try:
        return cipher.decrypt(counter_nonce(nonce), ciphertext, aad)
    except InvalidTag:
        raise AuthenticationFailed() from None


def unseal_into(
    cipher: AESGCM, nonce: int, ciphertext: bytes | memoryview, aad: bytes, out: memoryview
) -> None:
    """``unseal``, written to ``out`` (exactly ``len(ciphertext) - TAG_LEN`` bytes)."""
    try:
        cipher.decrypt_into(counter_nonce(nonce), ciphertext, aad, out)
    except InvalidTag:
        raise AuthenticationFailed() from None


def seal_object(master: bytes, plaintext: bytes, kind: bytes, purpose: bytes = b"object") -> bytes:
    """A standalone object: version byte, salt, AES-GCM(ciphertext || tag). ``purpose`` names
    the family of keys (HKDF info): a mirror's manifest uses its own."""
    salt = new_salt()
    cipher = derive(master, salt, purpose)
    header = bytes([ENVELOPE_VERSION]) + salt
    return header + seal(cipher, 0, plaintext, header + kind)


def unseal_object(master: bytes, data: bytes, kind: bytes, purpose: bytes = b"object") -> bytes:
    if len(data) < 1 + SALT_LEN + TAG_LEN:
        raise EnvelopeError(f"object too short ({len(data)} bytes)")
    if data[0] != ENVELOPE_VERSION:
        raise EnvelopeError(f"unknown envelope version {data[0]}")
    header = data[: 1 + SALT_LEN]
    cipher = derive(master, header[1:], purpose)
    return unseal(cipher, 0, memoryview(data)[1 + SALT_LEN :], header + kind)
