"""An encrypted mirror's keys and codecs (docs/mirror.md §8): the marker's ``encryption``
value (a repository key file wrapping the master keys under the password), the object keys of
paths (keyed hashes), the file objects (segments a ranged read decrypts on its own, from
cairn.crypto.segments) and the sealed manifest heads and pieces.

The master keys are those of a repository's key file, made and opened the same way (argon2id,
the same bounds, the same password sources), and every key of the mirror derives from the
encryption key ``Ke`` with HKDF under a label of its own. Errors are cairn's: a wrong password
is ``WrongPassword``; an object that fails its checks is an ``IntegrityError`` naming it; a
marker whose ``encryption`` is not one this version knows is an ``EncryptionUnknown``.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterable, Iterator
from typing import BinaryIO, cast

import blake3

from cairn.core import clock
from cairn.core.errors import IntegrityError, RepositoryError, UsageError, WrongPassword
from cairn.crypto import aead, segments
from cairn.crypto.kdf import KdfParams
from cairn.crypto.keys import (
    BadPassword,
    KeyFile,
    KeyFileError,
    MasterKey,
    open_key_file,
    parse_key_file,
    wrap,
)
from cairn.crypto.segments import ReadRange, SegmentError
from cairn.ops.mirror.keys import check_path
from cairn.ops.mirror.manifest import Piece

SCHEME = "aes-256-gcm-v1"
CONTENT_TYPE = "application/octet-stream"  # every object's: an extension would tell the type
HEAD = b"mirror head"  # the kinds of sealed manifest objects (their AAD)
PIECE = b"mirror piece"
_NAMES = b"mirror names"  # HKDF labels (info "cairn v1 " || label)
_MANIFEST = b"mirror manifest"
_MEMBERS = frozenset({"scheme", "key"})


class EncryptionUnknown(RepositoryError):
    """A marker's ``encryption`` that this version cannot read: refused before any password."""


class EncryptedFile:
    """One file's object as it is encrypted, a stream of chunks (iterate once): ``salt`` is
    known before the first chunk, for the manifest entry (§8.5)."""

    def __init__(self, cipher: segments.FileCipher, chunks: Iterable[bytes]) -> None:
        self.salt = cipher.salt
        self._chunks = segments.encrypt(cipher, chunks)

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks


def read_encryption(value: object) -> KeyFile:
    """The key file of a marker's ``encryption`` value, every check passed (§8.1); no password
    needed, so a reader refuses an unknown scheme before it asks for one."""
    if type(value) is not dict:
        raise EncryptionUnknown(f"unknown mirror encryption {_short(value)}")
    if value.get("scheme") != SCHEME:
        raise EncryptionUnknown(f"unknown mirror encryption scheme {_short(value.get('scheme'))}")
    if set(value) != _MEMBERS:
        raise EncryptionUnknown(f"mirror encryption members must be exactly {sorted(_MEMBERS)}")
    if type(value["key"]) is not dict:
        raise EncryptionUnknown("the mirror's key is not a key file (a JSON object)")
    try:
        return parse_key_file(json.dumps(value["key"]).encode())
    except KeyFileError as e:
        raise EncryptionUnknown(f"the mirror's key: {e}") from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class MirrorCipher:
    """The keys of one encrypted mirror and what they do: object keys, file objects, manifest
    objects. Built by ``create`` (at `cairn mirror init`) or ``from_marker`` (every other
    command)."""

    def __init__(self, master: MasterKey) -> None:
        self._ke = master.encryption
        self._names = aead.derive_key(master.encryption, None, _NAMES)

    @classmethod
    def create(
        cls,
        password: bytes,
        kdf: KdfParams | None = None,
        *,
        host: str | None = None,
        username: str | None = None,
    ) -> tuple[MirrorCipher, dict[str, object]]:
        """New master keys, and the marker's ``encryption`` value that wraps them under
        ``password`` (a key file recording ``host`` and ``username``, by default this
        machine's and user's)."""
        if not password:
            raise UsageError("an empty password is not allowed")
        meta = {
            "created": clock.now().isoformat(),
            "host": socket.gethostname() if host is None else host,
            "username": getpass.getuser() if username is None else username,
        }
        master = MasterKey.generate()
        key = json.loads(wrap(master, password, kdf or KdfParams(), meta))
        value: dict[str, object] = {"scheme": SCHEME, "key": key}
        read_encryption(value)  # what a reader will accept (labels too long, bounds)
        return cls(master), value

    @classmethod
    def from_marker(cls, encryption: object, password: bytes) -> MirrorCipher:
        """The cipher of the mirror whose marker has this ``encryption`` value (the decoded
        JSON member), if ``password`` opens its key."""
        key_file = read_encryption(encryption)
        try:
            return cls(open_key_file(key_file, password))
        except BadPassword:
            what = " (it was empty)" if not password else ""
            raise WrongPassword(
                f"wrong password: the mirror's key does not open with it{what}"
            ) from None
        except KeyFileError as e:
            raise EncryptionUnknown(f"the mirror's key: {e}") from None

    # ----------------------------------------------------------------- object keys
    def object_key(self, path: bytes) -> str:
        """The key of ``path``'s object below the mirror's root: ``<hh>/<64 hex>``, the keyed
        BLAKE3 of the path, the same for a path at every push (§8.3)."""
        check_path(path)
        digest = blake3.blake3(path, key=self._names).hexdigest()
        return f"{digest[:2]}/{digest}"

    # ----------------------------------------------------------------- file objects
    encrypted_size = staticmethod(segments.encrypted_size)

    @staticmethod
    def plain_size(stored_size: int, name: str = "object") -> int:
        """The size of the file an object of ``stored_size`` bytes holds."""
        try:
            return segments.plain_size(stored_size)
        except SegmentError as e:
            raise IntegrityError(name, str(e)) from None

    def encrypt_stream(
        self, source: BinaryIO | Iterable[bytes], *, salt: bytes | None = None
    ) -> EncryptedFile:
        """The object of the file whose bytes are ``source`` (a binary file or chunks of any
        sizes), streamed with a segment or two in memory; a fresh salt every time, so the same
        file encrypts differently at every write and in every mirror. ``salt`` seals it under
        a salt already used, which gives the same object again: only for the very content
        that salt sealed before (the resume of an upload in parts, §8.7), never for another."""
        cipher = segments.FileCipher(self._ke, segments.new_salt() if salt is None else salt)
        return EncryptedFile(cipher, _chunks(source))

    def encrypt_all(self, data: bytes, *, salt: bytes | None = None) -> tuple[bytes, bytes]:
        """(object, salt) of a file held in memory."""
        stream = self.encrypt_stream([data], salt=salt)
        return b"".join(stream), stream.salt

    def decrypt_stream(
        self, chunks: Iterable[bytes], *, salt: bytes | None = None, name: str = "object"
    ) -> Iterator[bytes]:
        """The file's bytes from its whole object's, streamed; ``salt`` (the manifest entry's)
        refuses an object of another version. Raises IntegrityError naming ``name`` at the
        first segment that fails, or at the end if the object was truncated or extended."""
        try:
            yield from segments.decrypt(self._ke, chunks, salt)
        except SegmentError as e:
            raise IntegrityError(name, str(e)) from None

    def decrypt_all(self, data: bytes, *, salt: bytes | None = None, name: str = "object") -> bytes:
        return b"".join(self.decrypt_stream([data], salt=salt, name=name))

    def decrypt_range(
        self,
        read: ReadRange,
        plain_offset: int,
        length: int,
        plain_size: int,
        *,
        salt: bytes | None = None,
        name: str = "object",
    ) -> bytes:
        """Bytes ``plain_offset`` to ``plain_offset + length`` (fewer past the end) of a file of
        ``plain_size`` bytes, whose object ``read(offset, length)`` reads by ranges: only the
        segments that hold them are read, in one call (and the header in another, without
        ``salt``, unless the range starts in the first segment)."""
        try:
            return segments.decrypt_range(self._ke, read, plain_offset, length, plain_size, salt)
        except SegmentError as e:
            raise IntegrityError(name, str(e)) from None

    # ----------------------------------------------------------------- manifest objects
    def seal_manifest(self, data: bytes, kind: bytes) -> bytes:
        """A head (``HEAD``) or piece (``PIECE``) as stored: an object envelope (docs/format.md
        §5.2) under the manifest's keys, bound to its kind."""
        return aead.seal_object(self._ke, data, _kind(kind), _MANIFEST)

    def open_manifest(self, data: bytes, kind: bytes, *, name: str = "manifest object") -> bytes:
        try:
            return aead.unseal_object(self._ke, data, _kind(kind), _MANIFEST)
        except aead.EnvelopeError as e:
            raise IntegrityError(name, str(e)) from None
        except aead.AuthenticationFailed:
            what = kind.decode().removeprefix("mirror ")
            raise IntegrityError(
                name, f"fails authentication (damaged, tampered, or not a {what} of this mirror)"
            ) from None

    def seal_piece(self, piece: Piece) -> Piece:
        """``piece`` (from manifest.encode_base or encode_delta) as stored: sealed, and named
        by the BLAKE3 of the sealed bytes, so §4.2's check holds without a key."""
        sealed = self.seal_manifest(piece.data, PIECE)
        return Piece(blake3.blake3(sealed).hexdigest(), sealed)

    def open_piece(self, hash: str, data: bytes) -> bytes:
        """The zstandard frame of the piece named ``hash``: its name checked, then opened."""
        name = f"manifest piece {hash}"
        if blake3.blake3(data).hexdigest() != hash:
            raise IntegrityError(name, "fails its hash")
        return self.open_manifest(data, PIECE, name=name)


def _kind(kind: bytes) -> bytes:
    if kind not in (HEAD, PIECE):
        raise ValueError(f"not a kind of manifest object: {kind!r}")
    return kind


def _chunks(source: BinaryIO | Iterable[bytes]) -> Iterable[bytes]:
    read = getattr(source, "read", None)
    if read is not None:
        return iter(lambda: read(segments.SEGMENT), b"")
    return cast("Iterable[bytes]", source)
