"""Reading restored files back: chunked as a backup would, each must give the blobs the
snapshot lists. A later path of a hardlink is not read again: it is verified when it is the
same file as its first path, and that one was."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

from cairn.model.chunker import Chunker
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.schedule import Link
from cairn.ops.restore.tally import Tally
from cairn.ops.safefs import Target
from cairn.repo.config import ChunkerParams


def verify(
    target: Target,
    entries: Iterable[Entry],
    chunker: ChunkerParams,
    blob_id: Callable[[bytes | memoryview], bytes],
    tally: Tally,
    links: Sequence[Link] = (),
) -> None:
    """Verifies ``entries`` (files written), then ``links`` (later paths of hardlinks, linked)."""
    chunks = Chunker(chunker)
    firsts = {link.first for link in links}
    good: set[tuple[bytes, ...]] = set()  # the first paths of links that were verified
    entries = list(entries)
    progress = tally.progress
    progress.start("verify", len(entries), sum(e.node.size for e in entries))
    for entry in entries:
        path = b"/".join(entry.parts)
        try:
            fd = target.open_file(target.dir_fd(entry.parts[:-1]), entry.parts[-1])
            with os.fdopen(fd, "rb") as f:
                ids = []
                for c in chunks.chunks(f):
                    ids.append(blob_id(c))
                    progress.bytes_done(len(c))
        except OSError as e:
            tally.error(path, f"cannot verify: {e.strerror}")
            continue
        finally:
            progress.item_done(path, entry.node.size)
        if ids != entry.node.content:
            tally.error(path, "restored content differs from the snapshot")
        else:
            tally.summary.verified += 1
            if entry.parts in firsts:
                good.add(entry.parts)
    for link in links:
        if link.first not in good:
            continue  # the first path's problem is reported already
        path = b"/".join(link.entry.parts)
        try:
            same = _inode(target, link.entry.parts) == _inode(target, link.first)
        except OSError as e:
            tally.error(path, f"cannot verify: {e.strerror}")
            continue
        if same:
            tally.summary.verified += 1
        else:
            tally.error(path, "restored hardlink is not the file of its first path")


def _inode(target: Target, parts: tuple[bytes, ...]) -> tuple[int, int]:
    st = os.stat(parts[-1], dir_fd=target.dir_fd(parts[:-1]), follow_symlinks=False)
    return st.st_dev, st.st_ino
