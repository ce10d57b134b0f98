"""A node's map, written out field by field, is the one the field loop made: same keys, same
order, same values (a tree blob's id is the hash of its bytes, so any difference would store
every tree again)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cairn.model.node import _FIELD_NAMES, _OPTIONAL_EMPTY, TYPES, Node, encode_tree


def reference_map(node: Node) -> dict[str, object]:
    """The map as the loop over the fields made it."""
    out = {
        k: v
        for k in _FIELD_NAMES
        if (v := getattr(node, k)) is not None and (v or k not in _OPTIONAL_EMPTY)
    }
    if "xattrs" in out:
        out["xattrs"] = [list(x) for x in node.xattrs]
    return out


ints = st.one_of(st.none(), st.just(0), st.integers(0, 2**64 - 1))
blob_id = st.binary(min_size=32, max_size=32)
nodes = st.builds(
    Node,
    name=st.one_of(st.just(b""), st.binary(min_size=1, max_size=8)),
    type=st.sampled_from(sorted(TYPES)),
    mode=ints,
    uid=ints,
    gid=ints,
    user=st.one_of(st.none(), st.just(""), st.text(max_size=4)),
    group=st.one_of(st.none(), st.just(""), st.text(max_size=4)),
    mtime=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    atime=ints,
    ctime=ints,
    size=ints,
    inode=ints,
    dev=ints,
    links=ints,
    content=st.lists(blob_id, max_size=3),
    subtree=st.one_of(st.none(), blob_id),
    target=st.one_of(st.none(), st.just(b""), st.binary(min_size=1, max_size=8)),
    rdev=ints,
    xattrs=st.lists(st.tuples(st.binary(max_size=4), st.binary(max_size=4)), max_size=2),
)


@given(nodes)
def test_map_is_the_field_loops(node):
    mine = node.to_map()
    want = reference_map(node)
    assert mine == want
    assert list(mine) == list(want)  # the order of the keys is the order of the bytes


@given(st.lists(nodes, max_size=5))
def test_tree_bytes_are_the_field_loops(batch):
    import msgpack

    want = msgpack.packb(
        {"version": 1, "nodes": [reference_map(n) for n in sorted(batch, key=lambda n: n.name)]},
        use_bin_type=True,
    )
    assert encode_tree(batch) == want
