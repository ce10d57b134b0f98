"""Mirrors for the tests of what reads them, made with the building blocks of a push (the
source scan, the object keys, the next generation's pieces and head), in the order of
docs/mirror.md §5: objects, pieces, head, then the ``latest`` hint."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cairn.model.node import FILE
from cairn.ops.mirror.commit import next_generation
from cairn.ops.mirror.keys import object_key
from cairn.ops.mirror.manifest import Entry, Head, encode_head
from cairn.ops.mirror.reader import LATEST, MARKER, head_path, piece_path
from cairn.ops.mirror.source import read_source
from cairn.ops.mirror.state import MirrorState
from cairn.storage.base import Storage

MARKER_DOC = {
    "format": "cairn-mirror",
    "version": 1,
    "id": "0123456789abcdef0123456789abcdef",
    "created": "2026-01-01T00:00:00Z",
    "encryption": None,
}


class MirrorMaker:
    """Pushes a directory to ``store`` as a push would, generation after generation.
    ``prefix_len``: the bucket prefix's length, as the keys depend on it."""

    def __init__(self, store: Storage, state: Path, prefix_len: int = 0) -> None:
        self.store = store
        self.state = state
        self.prefix_len = prefix_len
        self.head: Head | None = None
        self.entries: dict[bytes, Entry] = {}
        store.write(MARKER, json.dumps(MARKER_DOC).encode())

    def key(self, path: bytes) -> str:
        return object_key(path, self.prefix_len)

    def push(self, src: str | os.PathLike[str]) -> Head:
        """Mirrors ``src`` (every file whose content changed is uploaded again)."""
        root = os.fsencode(os.fspath(src))
        with MirrorState(self.state) as state:
            source = read_source(root, state, workers=2, checksum=True)
        assert not source.unreadable, source.unreadable
        for path, entry in source.entries.items():
            old = self.entries.get(path)
            if entry.type == FILE and (old is None or old.hash != entry.hash):
                with open(os.path.join(root, path), "rb") as f:
                    self.put_object(path, f.read())
        return self.commit(source.entries)

    def put_object(self, path: bytes, data: bytes) -> None:
        key = self.key(path)
        self.store.delete(key)  # a local directory keeps an object once written
        self.store.write(key, data)

    def commit(self, entries: dict[bytes, Entry]) -> Head:
        """A generation with ``entries`` (which the tests may craft by hand)."""
        nxt = next_generation(
            self.head, self.entries, entries, created="2026-01-01T00:00:00Z", host="test"
        )
        assert nxt is not None
        for piece in nxt.pieces:
            self.store.write(piece_path(piece.hash), piece.data)
        self.store.write(head_path(nxt.head.generation), encode_head(nxt.head))
        self.store.delete(LATEST)
        self.store.write(LATEST, str(nxt.head.generation).encode())
        self.head, self.entries = nxt.head, dict(entries)
        return nxt.head
