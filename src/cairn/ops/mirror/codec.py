"""How one mirror names and stores what it holds, plain (docs/mirror.md §3, §4) or encrypted
(§8): the key and Content-Type of a path's object, the stored size of a file, and the heads
and pieces of the manifest as stored. Every reader and writer takes one from the marker
(``open_codec``), so that the rest of the mirror code is the same for both kinds; a plain
mirror's codec changes no byte of what it stores."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from cairn.core.errors import IntegrityError, UsageError
from cairn.ops.mirror import keys
from cairn.ops.mirror.crypt import CONTENT_TYPE, HEAD, MirrorCipher
from cairn.ops.mirror.manifest import Entry, Piece, check_piece


class Codec:
    """A plain mirror's: keys of §3 for a bucket prefix of ``prefix_len`` bytes, pieces and
    heads stored as they are encoded, objects holding the files' bytes."""

    cipher: MirrorCipher | None = None

    def __init__(self, prefix_len: int = 0) -> None:
        self.prefix_len = prefix_len

    def key(self, path: bytes) -> str:
        return keys.object_key(path, self.prefix_len)

    def content_type(self, path: bytes) -> str:
        return keys.content_type(path)

    def stored_size(self, size: int) -> int:
        """The size of the object of a file of ``size`` bytes."""
        return size

    def seal_head(self, data: bytes) -> bytes:
        return data

    def open_head(self, data: bytes, name: str) -> bytes:
        return data

    def seal_piece(self, piece: Piece) -> Piece:
        """The piece as stored, under the name it is stored by."""
        return piece

    def open_piece(self, name: str, data: bytes) -> bytes:
        """The zstandard frame of the stored piece ``name``, its hash checked."""
        return check_piece(name, data)

    def plain(self, chunks: Iterable[bytes], entry: Entry, name: str) -> Iterator[bytes]:
        """The file's bytes from its whole object's, read in order as ``chunks``."""
        return iter(chunks)


class EncryptedCodec(Codec):
    """An encrypted mirror's (§8): keyed keys, one Content-Type, sealed heads and pieces,
    objects of segments (checked against the entry's salt)."""

    def __init__(self, cipher: MirrorCipher) -> None:
        super().__init__(0)
        self.cipher = cipher

    def key(self, path: bytes) -> str:
        return self._cipher.object_key(path)

    def content_type(self, path: bytes) -> str:
        return CONTENT_TYPE

    def stored_size(self, size: int) -> int:
        return self._cipher.encrypted_size(size)

    def seal_head(self, data: bytes) -> bytes:
        return self._cipher.seal_manifest(data, HEAD)

    def open_head(self, data: bytes, name: str) -> bytes:
        return self._cipher.open_manifest(data, HEAD, name=name)

    def seal_piece(self, piece: Piece) -> Piece:
        return self._cipher.seal_piece(piece)

    def open_piece(self, name: str, data: bytes) -> bytes:
        return self._cipher.open_piece(name, data)

    def plain(self, chunks: Iterable[bytes], entry: Entry, name: str) -> Iterator[bytes]:
        if entry.salt is None:
            raise IntegrityError(name, "its manifest entry has no salt (§8.5)")
        return self._cipher.decrypt_stream(chunks, salt=entry.salt, name=name)

    @property
    def _cipher(self) -> MirrorCipher:
        assert self.cipher is not None
        return self.cipher


PLAIN = Codec()


def open_codec(
    encryption: object,
    prefix_len: int,
    password: Callable[[], bytes] | None,
) -> Codec:
    """The codec of a mirror whose marker has ``encryption`` and ``prefix-bytes``. A plain
    mirror never calls ``password``; an encrypted one is opened with what it returns
    (WrongPassword if its key does not open)."""
    if encryption is None:
        return Codec(prefix_len)
    if password is None:
        raise UsageError("the mirror is encrypted: a password is needed to read it")
    return EncryptedCodec(MirrorCipher.from_marker(encryption, password()))
