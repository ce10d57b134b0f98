"""Master keys and the key files that wrap them under a passphrase.

A key file is JSON, the one object kind that is not encrypted with the master key:

    {"version": 1, "created": ISO-8601, "host": str, "username": str,
     "kdf": {"algorithm": "argon2id", "time_cost": 3, "memory_cost": 65536, "parallelism": 2},
     "salt": base64(16 bytes), "wrapped": base64(nonce(12) || AES-256-GCM(master, aad))}

The wrapped plaintext is 64 bytes: the encryption key then the id key.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cairn.crypto.kdf import KdfParams, derive_key

KEY_FILE_VERSION = 1
_WRAP_AAD = b"cairn key v1"


class KeyFileError(Exception):
    pass


class BadPassword(Exception):
    pass


@dataclass(frozen=True)
class MasterKey:
    encryption: bytes  # 32 bytes: HKDF input for every encrypted object
    id_key: bytes  # 32 bytes: BLAKE3 key for blob ids

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(32), secrets.token_bytes(32))

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return blake3.blake3(data, key=self.id_key).digest()


def wrap(master: MasterKey, password: bytes, params: KdfParams, meta: dict[str, str]) -> bytes:
    salt = secrets.token_bytes(16)
    kek = AESGCM(derive_key(password, salt, params))
    nonce = secrets.token_bytes(12)
    wrapped = nonce + kek.encrypt(nonce, master.encryption + master.id_key, _WRAP_AAD)
    doc = {
        "version": KEY_FILE_VERSION,
        **meta,
        "kdf": params.as_dict(),
        "salt": base64.b64encode(salt).decode(),
        "wrapped": base64.b64encode(wrapped).decode(),
    }
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def read_key_file(data: bytes) -> dict[str, object]:
    try:
        doc = json.loads(data)
        if doc.get("version") != KEY_FILE_VERSION:
            raise KeyFileError(f"unsupported key file version {doc.get('version')!r}")
        KdfParams.from_dict(doc["kdf"])
        if len(base64.b64decode(doc["salt"], validate=True)) != 16:
            raise KeyFileError("the salt must be 16 bytes")
        if len(base64.b64decode(doc["wrapped"], validate=True)) != 12 + 64 + 16:
            raise KeyFileError("the wrapped key must be 92 bytes")
        return doc  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise KeyFileError(f"malformed key file: {e}") from None


def unwrap(data: bytes, password: bytes) -> MasterKey:
    doc = read_key_file(data)
    params = KdfParams.from_dict(doc["kdf"])  # type: ignore[arg-type]
    salt = base64.b64decode(doc["salt"])  # type: ignore[arg-type]
    wrapped = base64.b64decode(doc["wrapped"])  # type: ignore[arg-type]
    kek = AESGCM(derive_key(password, salt, params))
    try:
        raw = kek.decrypt(wrapped[:12], wrapped[12:], _WRAP_AAD)
    except InvalidTag:
        raise BadPassword() from None
    if len(raw) != 64:
        raise KeyFileError("wrapped key has the wrong length")
    return MasterKey(raw[:32], raw[32:])
