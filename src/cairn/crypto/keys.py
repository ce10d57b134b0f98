"""Master keys and the key files that wrap them under a passphrase.

A key file is JSON, the one object kind that is not encrypted with the master key:

    {"version": 1, "created": ISO-8601, "host": str, "username": str,
     "kdf": {"algorithm": "argon2id", "time_cost": 4, "memory_cost": 32768, "parallelism": 2},
     "salt": base64(16 bytes), "wrapped": base64(nonce(12) || AES-256-GCM(master, aad))}

The wrapped plaintext is 64 bytes: the encryption key then the id key. Anyone who can write to
the store can plant a key file, so it is parsed strictly (docs/format.md §5.1): at most
``MAX_KEY_FILE_BYTES``, exactly these fields, each of its exact JSON type and bounded size, and
KDF parameters within the bounds of cairn.crypto.kdf.
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


MAX_KEY_FILE_BYTES = 4096  # cairn writes about 400 bytes
TEXT_FIELDS = {"created": 64, "host": 255, "username": 256}  # informational; longest allowed
_FIELDS = {"version", "kdf", "salt", "wrapped", *TEXT_FIELDS}


@dataclass(frozen=True)
class KeyFile:
    """A key file that passed every check: what deriving and unwrapping need, and the JSON."""

    kdf: KdfParams
    salt: bytes
    wrapped: bytes
    doc: dict[str, object]


def parse_key_file(data: bytes) -> KeyFile:
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"malformed key file: {len(data)} bytes, more than a key file holds")
    try:
        doc = json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise KeyFileError("malformed key file: nested too deeply") from None
    except ValueError as e:  # also UnicodeDecodeError
        raise KeyFileError(f"malformed key file: {e}") from None
    if not isinstance(doc, dict):
        raise KeyFileError("malformed key file: not a JSON object")
    if "version" in doc and doc["version"] != KEY_FILE_VERSION:
        raise KeyFileError(f"unsupported key file version {doc['version']!r}")
    if set(doc) != _FIELDS:
        raise KeyFileError(f"malformed key file: the fields must be exactly {sorted(_FIELDS)}")
    if type(doc["version"]) is not int:
        raise KeyFileError("malformed key file: version must be the integer 1")
    for name, longest in TEXT_FIELDS.items():
        if not isinstance(doc[name], str) or len(doc[name]) > longest:
            raise KeyFileError(f"malformed key file: {name} must be a string of at most {longest}")
    try:
        kdf = KdfParams.from_dict(doc["kdf"])
    except ValueError as e:
        raise KeyFileError(f"malformed key file: {e}") from None
    salt = _base64(doc, "salt", 16)
    wrapped = _base64(doc, "wrapped", 12 + 64 + 16)
    return KeyFile(kdf, salt, wrapped, doc)


def read_key_file(data: bytes) -> dict[str, object]:
    """The JSON of a key file that passed every check (see ``parse_key_file``)."""
    return parse_key_file(data).doc


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("a field appears twice")
    return doc


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _base64(doc: dict[str, object], name: str, length: int) -> bytes:
    value = doc[name]
    if not isinstance(value, str) or len(value) > 4 * length:
        raise KeyFileError(f"malformed key file: {name} must be base64 of {length} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise KeyFileError(f"malformed key file: {name} is not valid base64") from None
    if len(raw) != length:
        raise KeyFileError(f"malformed key file: {name} must be {length} bytes, not {len(raw)}")
    return raw


def unwrap(data: bytes, password: bytes) -> MasterKey:
    return open_key_file(parse_key_file(data), password)


def open_key_file(key_file: KeyFile, password: bytes) -> MasterKey:
    """The master keys, if ``password`` opens the key file; else BadPassword."""
    kek = AESGCM(derive_key(password, key_file.salt, key_file.kdf))
    try:
        raw = kek.decrypt(key_file.wrapped[:12], key_file.wrapped[12:], _WRAP_AAD)
    except InvalidTag:
        raise BadPassword() from None
    if len(raw) != 64:
        raise KeyFileError("wrapped key has the wrong length")
    return MasterKey(raw[:32], raw[32:])
