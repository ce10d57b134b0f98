"""The manifest's next generation (cairn.ops.mirror.commit): small changes become deltas, a
grown chain is compacted into a base, and any chain of commits reads back as the last state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.ops.mirror.commit import next_generation
from cairn.ops.mirror.manifest import (
    MAX_DELTAS,
    Entry,
    Head,
    apply,
    decode_base,
    decode_delta,
)


def _file(i: int, mode: int = 0o644) -> Entry:
    return Entry(b"f%06d" % i, "file", mode, 0, 0, i, size=i, hash=i.to_bytes(32, "big"))


def _read(head: Head, stored: dict[str, bytes]) -> dict[bytes, Entry]:
    entries = decode_base(head.base.hash, stored[head.base.hash])
    for ref in head.deltas:
        apply(entries, decode_delta(ref.hash, stored[ref.hash]))
    return entries


@given(st.lists(st.dictionaries(st.integers(0, 40), st.sampled_from([0o644, 0o600])), max_size=12))
@settings(max_examples=60, deadline=None)
def test_any_chain_of_commits_reads_back(states: list[dict[int, int]]) -> None:
    stored: dict[str, bytes] = {}
    head: Head | None = None
    old: dict[bytes, Entry] = {}
    for state in states:
        new = {e.path: e for e in (_file(i, m) for i, m in state.items())}
        step = next_generation(head, old, new, created="t", host="h")
        if step is None:
            assert new == old and head is not None
            continue
        for piece in step.pieces:
            stored[piece.hash] = piece.data
        assert step.head.parent == (head.generation if head else None)
        head, old = step.head, new
        assert _read(head, stored) == new
        assert head.entries == len(new)
        assert head.bytes == sum(e.size for e in new.values())


def test_one_change_of_many_is_a_small_delta_and_a_long_chain_compacts() -> None:
    old = {e.path: e for e in (_file(i) for i in range(20000))}
    first = next_generation(None, {}, old, created="t", host="h")
    assert first is not None and first.head.generation == 1
    head = first.head
    sizes = []
    for n in range(MAX_DELTAS + 1):
        new = dict(old)
        new[b"f000007"] = _file(7, 0o600 if n % 2 == 0 else 0o644)
        step = next_generation(head, old, new, created="t", host="h")
        assert step is not None
        sizes.append(len(step.pieces[0].data))
        head, old = step.head, new
    assert max(sizes[:-1]) < 300  # deltas of one entry
    assert head.deltas == ()  # the 33rd delta compacted the chain into a base
    assert sizes[-1] > 10000
