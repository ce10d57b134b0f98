"""The next generation of the manifest (docs/mirror.md §4.2, §5): from the committed head and
entries and the entries a push arrived at, the pieces to write and the head that names them.
A small change is a delta appended to the chain; past the compaction threshold the whole
manifest becomes a new base. Pure: the caller writes the pieces, then creates the head."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cairn.model.node import FILE
from cairn.ops.mirror.manifest import (
    Entry,
    Head,
    Piece,
    PieceRef,
    diff,
    encode_base,
    encode_delta,
)


@dataclass(frozen=True, slots=True)
class NextGeneration:
    head: Head
    pieces: list[Piece]  # to write before the head


def next_generation(
    committed: Head | None,
    old: dict[bytes, Entry],
    new: dict[bytes, Entry],
    *,
    created: str,
    host: str,
    seal: Callable[[Piece], Piece] | None = None,
) -> NextGeneration | None:
    """None when ``new`` equals ``old``: nothing to commit. ``seal`` turns a piece into the
    bytes stored and the name they go by (an encrypted mirror's, §8.5); the head references
    the stored pieces, whose sizes also decide the compaction."""
    store = seal or (lambda piece: piece)
    delta = diff(old, new)
    if committed is not None and not delta:
        return None
    total = sum(e.size for e in new.values() if e.type == FILE)
    generation = committed.generation + 1 if committed else 1
    parent = committed.generation if committed else None
    if committed is not None:
        piece = store(encode_delta(delta))
        ref = PieceRef(piece.hash, len(piece.data))
        head = Head(
            generation,
            parent,
            created,
            host,
            committed.base,
            (*committed.deltas, ref),
            len(new),
            total,
        )
        if not head.needs_compaction():
            return NextGeneration(head, [piece])
    base = store(encode_base(new.values()))
    head = Head(
        generation, parent, created, host, PieceRef(base.hash, len(base.data)), (), len(new), total
    )
    return NextGeneration(head, [base])
