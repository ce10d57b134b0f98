"""The largest plaintexts the format allows (docs/format.md §5.3).

A reader decompresses nothing beyond these bounds, so a small crafted object cannot inflate
into gigabytes: a blob's zstd frame must declare its content size, and that size must be the
blob's indexed raw length, itself at most the bound of its type; a standalone object's frame
must declare a size within the bound of its kind.
"""

from __future__ import annotations

from cairn.repo import layout

# The largest chunk any repository's chunker may cut (the config's max_size is at most this).
MAX_DATA_BLOB = 16 << 20
# One directory listing: a million entries of typical size take about 150 MiB.
MAX_TREE_BLOB = 256 << 20
MAX_OBJECT = {
    layout.CONFIG: 1 << 20,
    layout.INDEX: 64 << 20,  # cairn writes index objects of at most about 50,000 blobs (3 MiB)
    layout.SNAPSHOTS: 16 << 20,
    layout.LOCKS: 64 << 20,  # a prune's lock lists the packs it deletes: 35 bytes each
    layout.OPERATIONS: 1 << 20,  # an operation record: about 200 bytes
}


def max_blob(blob_type: int) -> int:
    return MAX_TREE_BLOB if blob_type == layout.TREE_BLOB else MAX_DATA_BLOB


def max_object(prefix: str) -> int:
    """The bound for an object kind: ``layout.CONFIG``, ``layout.INDEX``, ..."""
    return MAX_OBJECT[prefix]
