"""The source of a push, hashed: the scan's entries with every file's BLAKE3, taken from the
local state for a file seen unchanged (size, times, inode, device) and read otherwise, on
``workers`` threads (blake3 releases the GIL). ``checksum`` reads every file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cairn.core.overlap import Overlap
from cairn.model.node import FILE
from cairn.ops.mirror.manifest import Entry
from cairn.ops.mirror.scan import Scanned, Unreadable, hash_file, scan
from cairn.ops.mirror.state import MirrorState


@dataclass(slots=True)
class Source:
    entries: dict[bytes, Entry] = field(default_factory=dict)
    scanned: dict[bytes, Scanned] = field(default_factory=dict)  # by path: for uploads, state
    unreadable: list[Unreadable] = field(default_factory=list)
    files_read: int = 0
    bytes_read: int = 0


def read_source(root: bytes, state: MirrorState, *, workers: int, checksum: bool) -> Source:
    out = Source()
    to_read: list[Scanned] = []
    for item in scan(root):
        if isinstance(item, Unreadable):
            out.unreadable.append(item)
            continue
        if item.entry.type == FILE:
            known = None if checksum else state.known_hash(item)
            if known is None:
                to_read.append(item)
                continue
            item.entry.hash = known
        out.entries[item.entry.path] = item.entry
        out.scanned[item.entry.path] = item
    threads = max(1, workers)
    with Overlap(threads, "cairn-hash") as pool:  # a few ahead, not a future per file
        for (_root, item), pending in pool.map(
            _hash, ((root, i) for i in to_read), ahead=4 * threads
        ):
            error = pending.result()
            if error is not None:
                out.unreadable.append(Unreadable(item.entry.path, error))
                continue
            out.entries[item.entry.path] = item.entry
            out.scanned[item.entry.path] = item
            out.files_read += 1
            out.bytes_read += item.entry.size
    return out


def _hash(job: tuple[bytes, Scanned]) -> str | None:
    root, item = job
    try:
        item.entry.hash = hash_file(
            os.path.join(root, item.entry.path), item.entry.size, item.entry.mtime
        )
    except OSError as e:
        return e.strerror or str(e)
    return None


def keep_unreadable(old: dict[bytes, Entry], source: Source) -> None:
    """Carries over from the committed manifest the entries of what could not be read, and of
    everything below an unreadable directory, so that a push neither drops nor deletes them."""
    bad = [u.path for u in source.unreadable]
    if not bad:
        return
    prefixes = tuple(p + b"/" for p in bad)
    for path, entry in old.items():
        if path in source.entries:
            continue
        if path in bad or path.startswith(prefixes):
            source.entries[path] = entry
