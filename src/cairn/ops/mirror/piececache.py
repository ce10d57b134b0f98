"""The pieces of the generation last pushed, kept beside the local state (docs/mirror.md §7)
under their hashes as in the bucket, so that a push whose source did not change, or that
starts from the generation it committed itself, downloads no manifest. A piece is named by
the BLAKE3 of its bytes: one that does not hash to its name is dropped and fetched again."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import blake3

from cairn.ops.mirror.reader import PIECES
from cairn.storage.base import Storage, StorageWrapper

_PREFIX = PIECES + "/"


class CachedPieces(StorageWrapper):
    """``inner`` with its manifest pieces read from (and saved to) ``directory``."""

    def __init__(self, inner: Storage, directory: Path | None) -> None:
        super().__init__(inner)
        self.directory = directory  # None: no cache

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        whole = not offset and length is None
        if self.directory is None or not whole or not name.startswith(_PREFIX):
            return self.inner.read(name, offset, length)
        digest = name[len(_PREFIX) :]
        path = self.directory / digest
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        if data and blake3.blake3(data).hexdigest() == digest:
            return data
        data = self.inner.read(name)
        self.keep(digest, data)
        return data

    def keep(self, digest: str, data: bytes) -> None:
        """Saves a piece (a failure to save is only a cache miss next time)."""
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.directory / f".{digest}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.directory / digest)
        except OSError:
            pass

    def retain(self, digests: Iterable[str]) -> None:
        """Forgets every cached piece but ``digests``."""
        keep = set(digests)
        if self.directory is None:
            return
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if name not in keep:
                try:
                    os.unlink(self.directory / name)
                except OSError:
                    pass
