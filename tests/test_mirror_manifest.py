"""The mirror's manifest and object keys (docs/mirror.md §3, §4): round trips, and every
damage a reader must refuse."""

from __future__ import annotations

import os

import blake3
import botocore.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.ops.mirror.keys import MAX_KEY, NAMES, BadPath, content_type, object_key
from cairn.ops.mirror.manifest import (
    Delta,
    Entry,
    Head,
    ManifestError,
    PieceRef,
    _seal,
    apply,
    check_tree,
    decode_base,
    decode_delta,
    decode_head,
    diff,
    encode_base,
    encode_delta,
    encode_head,
)
from tests.s3server import BUCKET

_component = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b not in (b".", b"..")
)
paths = st.lists(_component, min_size=1, max_size=4).map(b"/".join)


@st.composite
def entries(draw: st.DrawFn, path: bytes | None = None) -> Entry:
    kind = draw(st.sampled_from(["file", "dir", "symlink", "fifo", "chardev"]))
    return Entry(
        path=path if path is not None else draw(paths),
        type=kind,
        mode=draw(st.integers(0, 0o7777)),
        uid=draw(st.integers(0, 2**32 - 1)),
        gid=draw(st.integers(0, 2**32 - 1)),
        mtime=draw(st.integers(-(2**62), 2**62)),
        user=draw(st.none() | st.text(max_size=8)),
        group=draw(st.none() | st.text(max_size=8)),
        size=draw(st.integers(0, 2**50)) if kind == "file" else 0,
        hash=draw(st.binary(min_size=32, max_size=32)) if kind == "file" else None,
        etag=draw(st.none() | st.text(max_size=40)) if kind == "file" else None,
        target=draw(st.binary(min_size=1, max_size=50)) if kind == "symlink" else None,
        rdev=draw(st.integers(0, 2**32)) if kind == "chardev" else 0,
        link=draw(st.integers(0, 5)) if kind == "file" else 0,
        xattrs=sorted(
            draw(st.dictionaries(st.binary(min_size=1, max_size=8), st.binary())).items()
        ),
    )


def trees(min_size: int = 0) -> st.SearchStrategy[dict[bytes, Entry]]:
    return st.lists(paths, min_size=min_size, max_size=12, unique=True).flatmap(
        lambda ps: st.tuples(*(entries(p) for p in ps)).map(lambda es: {e.path: e for e in es})
    )


@given(trees())
@settings(max_examples=60, deadline=None)
def test_base_round_trip(tree: dict[bytes, Entry]) -> None:
    piece = encode_base(tree.values())
    assert piece.hash == blake3.blake3(piece.data).hexdigest()
    assert decode_base(piece.hash, piece.data) == tree


@given(trees(), trees())
@settings(max_examples=60, deadline=None)
def test_delta_turns_old_into_new(old: dict[bytes, Entry], new: dict[bytes, Entry]) -> None:
    piece = encode_delta(diff(old, new))
    delta = decode_delta(piece.hash, piece.data)
    state = dict(old)
    apply(state, delta)
    assert state == new


def test_one_changed_entry_of_many_makes_a_small_delta() -> None:
    tree = {
        f"dir{i // 1000}/file{i}".encode(): Entry(
            f"dir{i // 1000}/file{i}".encode(),
            "file",
            0o644,
            1000,
            1000,
            i,
            size=i,
            hash=blake3.blake3(str(i).encode()).digest(),
            etag=f'"{i:032x}"',
        )
        for i in range(20000)
    }
    changed = dict(tree)
    e = tree[b"dir7/file7001"]
    changed[e.path] = Entry(
        e.path, "file", 0o600, 1000, 1000, e.mtime, size=e.size, hash=e.hash, etag=e.etag
    )
    delta = encode_delta(diff(tree, changed))
    assert len(delta.data) < 300
    assert len(encode_base(tree.values()).data) > 100 * len(delta.data)


def test_a_damaged_piece_is_refused() -> None:
    piece = encode_base([Entry(b"a", "dir", 0o755, 0, 0, 0)])
    flipped = bytearray(piece.data)
    flipped[-1] ^= 1
    with pytest.raises(ManifestError, match="fails its hash"):
        decode_base(piece.hash, bytes(flipped))
    with pytest.raises(ManifestError, match="is not a delta"):
        decode_delta(piece.hash, piece.data)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"path": b"a", "type": "dir", "mode": 1, "uid": 0, "gid": 0}, "without mtime"),
        ({"path": b"../x", "type": "dir", "mode": 1, "uid": 0, "gid": 0, "mtime": 0}, "'..'"),
        ({"path": b"/x", "type": "dir", "mode": 1, "uid": 0, "gid": 0, "mtime": 0}, "relative"),
        ({"path": b"a", "type": "file", "mode": 1, "uid": 0, "gid": 0, "mtime": 0}, "hash"),
        ({"path": b"a", "type": "door", "mode": 1, "uid": 0, "gid": 0, "mtime": 0}, "type"),
        ({"path": b"a", "type": "dir", "mode": -1, "uid": 0, "gid": 0, "mtime": 0}, "bad mode"),
        ({"path": "a", "type": "dir", "mode": 1, "uid": 0, "gid": 0, "mtime": 0}, "not bytes"),
    ],
)
def test_a_malformed_entry_is_refused(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Entry.from_map(bad)


def test_unknown_members_are_ignored() -> None:
    m = {"path": b"a", "type": "dir", "mode": 1, "uid": 0, "gid": 0, "mtime": 0, "later": 1}
    assert Entry.from_map(m) == Entry(b"a", "dir", 1, 0, 0, 0)


def test_entries_out_of_order_are_refused() -> None:
    maps = [Entry(p, "dir", 0, 0, 0, 0).to_map() for p in (b"b", b"a")]
    piece = _seal({"version": 1, "kind": "base", "entries": maps})
    with pytest.raises(ManifestError, match="out of order"):
        decode_base(piece.hash, piece.data)


def _head() -> Head:
    return Head(
        3,
        2,
        "2026-01-01T00:00:00Z",
        "host",
        PieceRef("a" * 64, 900),
        (PieceRef("b" * 64, 100),),
        10,
        12345,
    )


def test_head_round_trip_and_check() -> None:
    data = encode_head(_head())
    assert decode_head(data) == _head()
    with pytest.raises(ManifestError, match="fails its check"):
        decode_head(data.replace(b'"entries":10', b'"entries":11'))
    with pytest.raises(ManifestError, match="unknown version"):
        decode_head(data.replace(b'"version":1', b'"version":2'))


def test_compaction_when_the_chain_grows() -> None:
    head = _head()
    assert not head.needs_compaction()
    grown = Head(4, 3, head.created, head.host, head.base, head.deltas * 3, 10, 1)
    assert grown.needs_compaction()


@given(paths, st.integers(0, 900))
@settings(max_examples=200, deadline=None)
def test_keys_fit_and_only_plain_names_keep_their_own(path: bytes, prefix_len: int) -> None:
    key = object_key(path, prefix_len)
    assert prefix_len + 1 + len(key.encode()) <= MAX_KEY
    if key.encode() != path:
        assert (
            key
            == f"{NAMES}/{blake3.blake3(path).hexdigest()[:2]}/{blake3.blake3(path).hexdigest()}"
        )


@pytest.mark.parametrize(
    "path",
    [b"caf\xe9.txt", b"a\nb", b".cairn-mirror/mirror", b"d/.tmp-x", b"x" * 1024],
)
def test_awkward_names_are_encoded(path: bytes) -> None:
    assert object_key(path).startswith(NAMES + "/")


def test_plain_names_are_their_own_key() -> None:
    assert object_key("photos/été 2024/IMG 1.jpg".encode()) == "photos/été 2024/IMG 1.jpg"
    assert object_key(b"x" * 1000, prefix_len=23) == "x" * 1000
    assert object_key(b"x" * 1000, prefix_len=24).startswith(NAMES)


@pytest.mark.parametrize("path", [b"", b"/a", b"a/", b"a//b", b"a/./b", b"../a"])
def test_bad_paths_have_no_key(path: bytes) -> None:
    with pytest.raises(BadPath):
        object_key(path)


def test_content_types() -> None:
    assert content_type(b"a/b.jpg") == "image/jpeg"
    assert content_type(b"index.html") == "text/html"
    assert content_type(b"backup.tar.gz") == "application/gzip"
    assert content_type(b"no-extension") == "application/octet-stream"
    assert content_type(b"\xff.txt") == "text/plain"


def test_the_store_refuses_a_second_create_of_a_head(s3_server) -> None:  # type: ignore[no-untyped-def]
    """The rule two pushers rely on (docs/mirror.md §5): a create-only write of an existing
    head fails, on the S3 server the tests use."""
    client = s3_server.client()
    key = f"mirror-heads-{os.urandom(4).hex()}/.cairn-mirror/heads/{1:020d}"
    client.put_object(Bucket=BUCKET, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"second", IfNoneMatch="*")
    assert e.value.response["Error"]["Code"] in ("PreconditionFailed", "412")
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first"


def test_a_manifest_must_be_a_tree() -> None:
    d = Entry(b"d", "dir", 0o755, 0, 0, 0)
    f = Entry(b"f", "file", 0o644, 0, 0, 0, hash=bytes(32))
    check_tree({b"d": d, b"d/x": Entry(b"d/x", "fifo", 0, 0, 0, 0)})
    with pytest.raises(ManifestError, match="no parent directory"):
        check_tree({b"d/x": Entry(b"d/x", "fifo", 0, 0, 0, 0)})
    with pytest.raises(ManifestError, match="which is a file"):
        check_tree({b"f": f, b"f/x": Entry(b"f/x", "fifo", 0, 0, 0, 0)})


@given(trees(), st.lists(paths, max_size=5, unique=True))
@settings(max_examples=40, deadline=None)
def test_pieces_packed_an_entry_at_a_time_hold_the_msgpack_of_the_whole_document(
    tree: dict[bytes, Entry], removed: list[bytes]
) -> None:
    import msgpack
    import zstandard

    removed = [p for p in removed if p not in tree]
    ordered = sorted(tree.values(), key=lambda e: e.path)
    base = {"version": 1, "kind": "base", "entries": [e.to_map() for e in ordered]}
    delta = {
        "version": 1,
        "kind": "delta",
        "put": [e.to_map() for e in ordered],
        "remove": sorted(removed),
    }
    for piece, doc in (
        (encode_base(tree.values()), base),
        (encode_delta(Delta(list(tree.values()), removed)), delta),
    ):
        raw = zstandard.ZstdDecompressor().decompress(piece.data)  # the size is in the frame
        assert raw == msgpack.packb(doc, use_bin_type=True)
