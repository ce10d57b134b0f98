"""Reading several blobs of a pack with one request: which ranges to read.

On an object store every request costs a round trip and is billed, so blobs of one pack that
lie close together are read with one ranged request, through the gaps between them, rather
than one request each. The restore in pack order (``cairn.ops.restore.packorder``) and the
tree walks of prune and check (``cairn.repo.packcache``) plan their reads with ``coalesce``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

LOCAL_GAP = 64 << 10  # a local disk reads through a gap this small rather than seek


def coalesce(
    items: Iterable[T], place: Callable[[T], tuple[int, int]], gap: int, limit: int
) -> Iterator[tuple[int, int, list[T]]]:
    """``items`` of one pack, sorted by offset (``place(item)``: its offset and length), in
    runs of one request each: (start, end, the run's items). An item joins the run before it
    while the gap between them is at most ``gap`` bytes and the run stays within ``limit``
    bytes (a run of one item may be larger)."""
    run: list[T] = []
    start = end = 0
    for item in items:
        offset, length = place(item)
        if run and offset - end <= gap and offset + length - start <= limit:
            run.append(item)
            end = max(end, offset + length)
            continue
        if run:
            yield start, end, run
        run, start, end = [item], offset, offset + length
    if run:
        yield start, end, run
