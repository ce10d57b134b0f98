"""Reading restored files back: chunked as a backup would, each must give the blobs the
snapshot lists."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from cairn.model.chunker import Chunker
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.tally import Tally
from cairn.ops.safefs import Target
from cairn.repo.config import ChunkerParams


def verify(
    target: Target,
    entries: Iterable[Entry],
    chunker: ChunkerParams,
    blob_id: Callable[[bytes | memoryview], bytes],
    tally: Tally,
) -> None:
    chunks = Chunker(chunker)
    for entry in entries:
        path = b"/".join(entry.parts)
        try:
            fd = target.open_file(target.dir_fd(entry.parts[:-1]), entry.parts[-1])
            with os.fdopen(fd, "rb") as f:
                ids = [blob_id(c) for c in chunks.chunks(f)]
        except OSError as e:
            tally.error(path, f"cannot verify: {e.strerror}")
            continue
        if ids != entry.node.content:
            tally.error(path, "restored content differs from the snapshot")
        else:
            tally.summary.verified += 1
