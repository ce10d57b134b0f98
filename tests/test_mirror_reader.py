"""Reading a mirror's manifest with reads alone (docs/mirror.md §6), on a local directory and
on the S3 test server: the newest head found without listing, pieces checked, bad stores
refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cairn.core.errors import ObjectMissing
from cairn.ops.mirror.manifest import (
    Delta,
    Entry,
    Head,
    ManifestError,
    PieceRef,
    encode_base,
    encode_delta,
    encode_head,
)
from cairn.ops.mirror.reader import (
    LATEST,
    MARKER,
    NotAMirror,
    head_path,
    load_manifest,
    newest_head,
    piece_path,
    read_marker,
)
from cairn.storage.base import Storage, StorageWrapper
from cairn.storage.local import LocalStorage
from cairn.storage.s3 import S3Storage
from cairn.storage.s3config import S3Location

MARKER_DOC = {
    "format": "cairn-mirror",
    "version": 1,
    "id": "0" * 32,
    "created": "2026-01-01T00:00:00Z",
    "encryption": None,
}


class CountingReads(StorageWrapper):
    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.reads: list[str] = []

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self.reads.append(name)
        return self.inner.read(name, offset, length)

    def list(self, prefix: str):  # type: ignore[no-untyped-def]
        raise AssertionError("a reader must not list")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CountingReads:
    if request.param == "local":
        (tmp_path / "mirror").mkdir()
        return CountingReads(LocalStorage(tmp_path / "mirror"))
    url = request.getfixturevalue("s3_url")
    return CountingReads(S3Storage(S3Location.parse(url)))


def _entry(path: bytes, mtime: int = 1) -> Entry:
    return Entry(path, "file", 0o644, 1, 2, mtime, size=3, hash=bytes(32), etag='"e"')


def _commit(store: Storage, generation: int, base: dict[bytes, Entry], deltas: list[Delta]) -> Head:
    base_piece = encode_base(base.values())
    store.write(piece_path(base_piece.hash), base_piece.data)
    refs = []
    for d in deltas:
        piece = encode_delta(d)
        store.write(piece_path(piece.hash), piece.data)
        refs.append(PieceRef(piece.hash, len(piece.data)))
    head = Head(
        generation,
        generation - 1 or None,
        "2026-01-01T00:00:00Z",
        "host",
        PieceRef(base_piece.hash, len(base_piece.data)),
        tuple(refs),
        len(base),
        0,
    )
    store.write(head_path(generation), encode_head(head))
    return head


def test_the_newest_head_and_its_manifest(store: CountingReads) -> None:
    store.write(MARKER, json.dumps(MARKER_DOC).encode())
    assert read_marker(store).id == "0" * 32
    assert newest_head(store) is None
    base = {p: _entry(p) for p in (b"a", b"b/c", b"b/d")}
    base[b"b"] = Entry(b"b", "dir", 0o755, 0, 0, 1)
    first = _commit(store, 1, base, [])
    store.write(LATEST, b"1")
    d1 = Delta(put=[_entry(b"b/c", 9), _entry(b"e")], remove=[b"a"])
    d2 = Delta(remove=[b"e"])
    second = _commit(store, 2, base, [d1, d2])  # committed; its hint not written yet
    store.reads.clear()
    assert newest_head(store) == second
    assert store.reads == [LATEST, head_path(1), head_path(2), head_path(3)]
    assert load_manifest(store, second) == {
        b"b": base[b"b"],
        b"b/c": _entry(b"b/c", 9),
        b"b/d": _entry(b"b/d"),
    }
    assert load_manifest(store, first) == base
    store.reads.clear()
    assert newest_head(store, known=second) == second  # nothing newer: one read
    assert store.reads == [head_path(3)]


def test_a_hint_whose_head_is_gone_is_asked_again(store: CountingReads) -> None:
    head = _commit(store, 1, {b"a": _entry(b"a")}, [])
    store.write(LATEST, b"7")  # names a head that is not there (removed meanwhile)
    with pytest.raises(ManifestError, match="keep disappearing"):
        newest_head(store)
    store.delete(LATEST)
    assert newest_head(store) == head


def test_damaged_manifests_are_refused(store: CountingReads) -> None:
    head = _commit(store, 1, {b"a": _entry(b"a")}, [])
    store.delete(piece_path(head.base))
    with pytest.raises(ManifestError, match="is missing"):
        load_manifest(store, head)
    store.write(piece_path(head.base), b"not the piece")
    with pytest.raises(ManifestError, match="has 13 bytes"):
        load_manifest(store, head)
    orphan = _commit(store, 3, {b"a": _entry(b"a"), b"x/y": _entry(b"x/y")}, [])
    with pytest.raises(ManifestError, match="no parent directory"):
        load_manifest(store, orphan)
    store.write(head_path(2), encode_head(head))  # generation 1's head under number 2
    with pytest.raises(ManifestError, match="holds generation 1"):
        newest_head(store)
    store.write(LATEST, b"x1")
    with pytest.raises(ManifestError, match="not a generation number"):
        newest_head(store)


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (None, "is not a mirror"),
        (b"{", "is not JSON"),
        (json.dumps({**MARKER_DOC, "format": "other"}).encode(), "not a cairn mirror"),
        (json.dumps({**MARKER_DOC, "version": 2}).encode(), "unknown mirror version 2"),
        (json.dumps({**MARKER_DOC, "encryption": "x"}).encode(), "unknown encryption"),
        (json.dumps({**MARKER_DOC, "id": 5}).encode(), "lacks its id"),
    ],
)
def test_a_store_that_is_not_a_mirror_is_refused(
    tmp_path: Path, marker: bytes | None, message: str
) -> None:
    (tmp_path / "dest").mkdir()
    store = LocalStorage(tmp_path / "dest")
    if marker is not None:
        store.write(MARKER, marker)
    with pytest.raises(NotAMirror, match=message):
        read_marker(store)
    with pytest.raises(ObjectMissing):
        store.read(LATEST)  # nothing written
