"""Reading the blobs a copy needs out of the source's packs, a pack at a time.

The blobs wanted from one pack are read in runs: neighbours whose gap is small are read with
one ranged request (a gap costs bytes, a request costs a round trip and, on an object store,
money), up to ``RUN_BYTES`` a run, so a pack of which most is wanted is read in a few large
requests and one of which little is wanted in a few small ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cairn.core.errors import IntegrityError
from cairn.repo import layout
from cairn.repo.index import IndexEntry, PackInfo
from cairn.repo.pack import BlobRef
from cairn.repo.repository import Repository

RUN_BYTES = 8 << 20  # the most one request reads
GAP_BYTES = 256 << 10  # a hole between wanted blobs read rather than split into two requests


@dataclass(frozen=True)
class Run:
    """Wanted blobs of one pack, read with one request: ``length`` bytes at ``offset``."""

    pack: PackInfo
    offset: int
    length: int
    blobs: tuple[BlobRef, ...]


def plan_runs(wanted: Iterable[tuple[bytes, IndexEntry]]) -> list[Run]:
    """The runs that read every wanted blob (id, where the source's index has it) once, pack by
    pack, each pack's in the order of its offsets."""
    by_pack: dict[bytes, tuple[PackInfo, list[BlobRef]]] = {}
    for blob_id, e in wanted:
        ref = BlobRef(blob_id, e.offset, e.length, e.raw_length)
        by_pack.setdefault(e.pack.id, (e.pack, []))[1].append(ref)
    runs: list[Run] = []
    for pack, refs in by_pack.values():
        refs.sort(key=lambda r: r.offset)
        group: list[BlobRef] = []
        for ref in refs:
            if group:
                start, end = group[0].offset, group[-1].offset + group[-1].length
                if ref.offset - end > GAP_BYTES or ref.offset + ref.length - start > RUN_BYTES:
                    runs.append(_run(pack, group))
                    group = []
            group.append(ref)
        if group:
            runs.append(_run(pack, group))
    return runs


def _run(pack: PackInfo, refs: list[BlobRef]) -> Run:
    start = refs[0].offset
    return Run(pack, start, refs[-1].offset + refs[-1].length - start, tuple(refs))


def read_run(repo: Repository, run: Run) -> list[tuple[BlobRef, memoryview]]:
    """Each blob of the run with its sealed (encrypted) bytes."""
    name = layout.pack_name(run.pack.id.hex())
    data = memoryview(repo.storage.read(name, run.offset, run.length))
    if len(data) != run.length:
        raise IntegrityError(name, "pack is truncated")
    return [(ref, data[ref.offset - run.offset :][: ref.length]) for ref in run.blobs]
