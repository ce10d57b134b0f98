"""The push planner (cairn.ops.mirror.planner), run against a model store: after its phases
every file's object holds the file's content, a content the store had already is copied rather
than uploaded, each new content goes up once, and metadata alone moves nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.ops.mirror.manifest import Entry
from cairn.ops.mirror.planner import Plan, plan

_paths = st.sampled_from([b"a", b"b", b"c", b"d/e", b"d/f", b"g"])
_contents = st.sampled_from([b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32])


def _file(path: bytes, digest: bytes, mode: int = 0o644) -> Entry:
    return Entry(path, "file", mode, 0, 0, 1, size=len(path) * 100, hash=digest, etag="e")


_trees = st.dictionaries(_paths, st.tuples(_contents, st.sampled_from([0o644, 0o600]))).map(
    lambda d: {p: _file(p, h, m) for p, (h, m) in d.items()}
)


def _run(store: dict[bytes, bytes], p: Plan, delete: bool) -> dict[bytes, bytes]:
    store = dict(store)
    for entry, source in p.copy:
        store[entry.path] = store[source]  # a KeyError: a copy from nothing
    for entry in p.upload:
        assert entry.hash is not None
        store[entry.path] = entry.hash
    for entry, source in p.copy_after:
        store[entry.path] = store[source]
    if delete:
        for entry in p.remove:
            del store[entry.path]
    return store


@given(_trees, _trees, st.booleans())
@settings(max_examples=300, deadline=None)
def test_after_the_plan_every_object_holds_its_file(
    old: dict[bytes, Entry], new: dict[bytes, Entry], delete: bool
) -> None:
    store = {p: e.hash for p, e in old.items() if e.hash is not None}
    p = plan(old, new)
    after = _run(store, p, delete)
    for path, entry in new.items():
        assert after[path] == entry.hash
    if delete:
        assert set(after) == set(new)
    uploaded = [e.hash for e in p.upload]
    assert len(uploaded) == len(set(uploaded))  # each content up once
    held = {e.hash for path, e in old.items() if path not in new or new[path].hash == e.hash}
    assert not held & set(uploaded)  # what the store keeps is copied, never uploaded


def test_a_rename_is_a_copy_and_a_mode_change_moves_nothing() -> None:
    old = {b"big": _file(b"big", b"\x01" * 32), b"x": _file(b"x", b"\x02" * 32)}
    new = {b"moved": _file(b"moved", b"\x01" * 32), b"x": _file(b"x", b"\x02" * 32, 0o600)}
    p = plan(old, new)
    assert (p.upload, p.copy_after, p.bytes_up) == ([], [], 0)
    assert p.copy == [(new[b"moved"], b"big")]
    assert p.unchanged == {b"x": "e"}
    assert p.remove == [old[b"big"]]


def test_a_swap_goes_up_rather_than_copying_from_a_key_it_overwrites() -> None:
    old = {b"a": _file(b"a", b"\x01" * 32), b"b": _file(b"b", b"\x02" * 32)}
    new = {b"a": _file(b"a", b"\x02" * 32), b"b": _file(b"b", b"\x01" * 32)}
    p = plan(old, new)
    assert p.copy == []
    assert sorted(e.path for e in p.upload) == [b"a", b"b"]


def test_duplicates_of_a_new_file_are_copied_after_it_goes_up() -> None:
    new = {p: _file(p, b"\x03" * 32) for p in (b"a", b"b", b"c")}
    p = plan({}, new)
    assert [e.path for e in p.upload] == [b"a"]
    assert p.copy_after == [(new[b"b"], b"a"), (new[b"c"], b"a")]
