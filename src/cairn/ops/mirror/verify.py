"""`cairn mirror verify`: the objects of the newest generation against its manifest. Every
file's object is asked for (one HEAD each): missing, of another size, or with an ETag other
than the one the manifest recorded (changed behind the manifest's back) is a problem. With
``read_data`` every object is downloaded and its BLAKE3 compared with the entry's.

Beside the newest generation, one listing of the trash and one of the heads say what a push
leaves behind for later: the trash generations (their objects and bytes), and the heads older
than the parent of the newest compaction, which a push with a lost state collects at its next
compaction (docs/mirror.md §7). They are reported, not problems."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import blake3

from cairn.core.errors import CairnError, ObjectMissing
from cairn.model.node import FILE
from cairn.ops.mirror.codec import Codec
from cairn.ops.mirror.manifest import Entry
from cairn.ops.mirror.reader import AREA, HEADS, load_manifest, newest_head
from cairn.storage.base import Storage
from cairn.storage.objects import ObjectStore

_READ = 4 << 20


@dataclass(slots=True)
class VerifyResult:
    generation: int | None = None
    files: int = 0
    bytes: int = 0
    bytes_read: int = 0
    problems: list[tuple[bytes, str]] = field(default_factory=list)  # (path, what is wrong)
    trash: list[tuple[int, int, int]] = field(default_factory=list)  # (generation, objects, bytes)
    old_heads: list[int] = field(default_factory=list)  # below what a compaction keeps


def verify(
    store: Storage,
    objects: ObjectStore,
    *,
    prefix_len: int = 0,
    read_data: bool = False,
    workers: int = 8,
    codec: Codec | None = None,
) -> VerifyResult:
    """``codec``: an encrypted mirror's; None: a plain one's for ``prefix_len``."""
    codec = codec or Codec(prefix_len)
    out = VerifyResult()
    head = newest_head(store, codec=codec)
    if head is None:
        return out
    out.generation = head.generation
    out.trash = _trash(store)
    compacted = head.generation - len(head.deltas)  # the generation that wrote the base
    out.old_heads = [g for g in _heads(store) if g < compacted - 1]
    files = [e for e in load_manifest(store, head, codec).values() if e.type == FILE]
    out.files, out.bytes = len(files), sum(e.size for e in files)

    def check(entry: Entry) -> tuple[Entry, str | None, int]:
        key = codec.key(entry.path)
        stored = codec.stored_size(entry.size)
        try:
            found = objects.head(key)
            if found is None:
                return entry, "its object is missing", 0
            if found.size != stored:
                return entry, f"its object has {found.size} bytes, not {stored}", 0
            if entry.etag and found.etag != entry.etag:
                return entry, "its object was changed since it was pushed (ETag differs)", 0
            if not read_data:
                return entry, None, 0
            hasher = blake3.blake3()
            size = 0
            for chunk in codec.plain(_chunks(store, key, stored), entry, f"object {key}"):
                hasher.update(chunk)
                size += len(chunk)
            if size != entry.size or hasher.digest() != entry.hash:
                return entry, "its object's content does not match its hash", stored
            return entry, None, stored
        except ObjectMissing:
            return entry, "its object is missing", 0
        except CairnError as e:
            return entry, str(e), 0

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for entry, problem, nread in pool.map(check, files):
            out.bytes_read += nread
            if problem is not None:
                out.problems.append((entry.path, problem))
    return out


def _chunks(store: Storage, key: str, size: int) -> Iterator[bytes]:
    """The object ``key`` in order, up to ``size`` bytes (fewer if it is shorter)."""
    offset = 0
    while offset < size:
        chunk = store.read(key, offset, min(_READ, size - offset))
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def _trash(store: Storage) -> list[tuple[int, int, int]]:
    prefix = f"{AREA}/trash/"
    found: dict[int, tuple[int, int]] = {}
    for name, size in store.list(prefix):
        generation = name[len(prefix) :].partition("/")[0]
        if generation.isdigit():
            n, total = found.get(int(generation), (0, 0))
            found[int(generation)] = (n + 1, total + size)
    return [(g, n, total) for g, (n, total) in sorted(found.items())]


def _heads(store: Storage) -> list[int]:
    names = (name[len(HEADS) + 1 :] for name, _size in store.list(f"{HEADS}/"))
    return sorted(int(g) for g in names if g.isdigit())
