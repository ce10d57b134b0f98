"""Restoring in pack order: which pack ranges a restore reads when each pack is read once.

Pure, like ``schedule``: from the entries to restore (in order) and the index's answers, with no
I/O. On an object store every request waits a round trip, so a restore that reads file by file
pays one for every few blobs; this one gathers the files of a *window* of blob places (however
many files that is), groups the blobs they need by pack, and reads each pack's needed blobs in
as few requests as pay: blobs apart by at most ``gap`` bytes are read with one request (through
the gap), up to ``READ_BYTES`` a request. Each blob read is written to every place in every
file of the window that has it, so a blob used twice in a window is read once, and the blob of
zeros (``cairn.ops.restore.zeros``) is not read at all: its places are holes. The executor
(``cairn.ops.restore.packexec``) runs the reads on many threads at once, in the order given
here: packs in the order the window's files first need them, so files complete early.

The windows' sizes are fixed: the first has ``FIRST_WINDOW`` blob places, so that the first
reads start once the first few trees are read, and each next one twice as many as the one
before, up to ``window_places`` (``WINDOW_PLACES`` unless a restore's options say otherwise).
So the reads are a function of the entries, the index, the gap and the window bound alone,
never of how fast the store answers: the executor makes exactly the requests ``requests``
lists, which the cost estimate and the thaw of archived packs count.

A pack needed in several windows is read in each, and the blobs a small window needs of it
lie scattered (the rest of the pack is other files'): read in many short requests where one
window would read it in a few long ones. So a window's reads shorter than ``CARRY_BYTES`` are
put off to the next window, with the blob places they serve, as long as those stay within
half of the next window's places (the next window plans them with its own: the blobs of the
same pack it needs are read with them, and the gaps between fill up); the last window puts
nothing off, and none puts off the reads it needs to make ``BUSY_BYTES`` (the longest first),
so that the reads start with the first window and never wait for the walk for want of work.
The places put off count in the next window's, so its plan stays within
``window_places``; a file is complete when its last blob place is written, whichever window
reads it. Once the windows are at their largest, each reads at least half of its places.

Memory: a window's plan, about 200 bytes a blob place, so ``WINDOW_PLACES`` bounds it at about
3.3 MiB; the executor holds at most three (the one whose reads are in flight, the next one
planned, and the one being planned after it), and the reads in flight (``READ_BYTES`` each,
plus the blob being decrypted), whatever the snapshot's size. A file larger than a window is
planned across windows: its state says how many of its blob places are still to be written,
and it is completed when that reaches zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cairn.core.errors import CairnError, IntegrityError, NotFoundError
from cairn.model.node import FILE
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.schedule import Link, Lookup, Read, first_paths
from cairn.ops.restore.zeros import ZeroBlob
from cairn.repo import layout
from cairn.repo.index import IndexEntry
from cairn.repo.ranges import coalesce

WINDOW_PLACES = 1 << 14  # blob places planned at once at most (a blob used twice counts twice)
FIRST_WINDOW = 1 << 7  # the first window's places; each next window has twice as many
READ_BYTES = 8 << 20  # one request reads at most this much (unless one blob is larger)
CARRY_BYTES = 4 << 20  # a window's shorter reads may be put off to the next window
BUSY_BYTES = 8 << 20  # but not those a window needs to read this much, to keep the link busy


@dataclass(slots=True, eq=False)
class FileJob:
    """A file being restored: its blob places still to be written. ``error``: why it fails
    whatever is read (a blob the index lacks; content that does not make its size)."""

    entry: Entry
    left: int
    error: CairnError | None = None
    state: Any = field(default=None)  # the executor's


class Needed(NamedTuple):
    """A blob a window reads, and where it goes: (file, offset in the file) for each place."""

    blob_id: bytes
    at: IndexEntry
    places: list[tuple[FileJob, int]]


class PackRead(NamedTuple):
    """One request: a range of a pack and the blobs in it that are needed, by offset."""

    read: Read
    blobs: list[Needed]


@dataclass(slots=True)
class Window:
    """Files whose blobs are read together: ``files`` are those first met in this window (a
    file larger than a window continues in the next ones); ``reads`` in the order to make."""

    files: list[FileJob]
    reads: list[PackRead]


Job = Entry | Link | Window  # an Entry: a directory or a special file, made at once


def requests(
    entries: Iterable[Entry],
    lookup: Lookup,
    gap: int,
    zero: ZeroBlob | None = None,
    window_places: int = WINDOW_PLACES,
) -> Iterator[Read]:
    """Every read of pack data that restoring ``entries`` in pack order makes, in order."""
    for job in schedule(entries, lookup, gap, window_places, zero=zero):
        if isinstance(job, Window):
            for pr in job.reads:
                yield pr.read


def schedule(
    entries: Iterable[Entry],
    lookup: Lookup,
    gap: int,
    window_places: int = WINDOW_PLACES,
    read_bytes: int = READ_BYTES,
    zero: ZeroBlob | None = None,
) -> Iterator[Job]:
    """The jobs of restoring ``entries`` in pack order: directories and special files as they
    come, files in windows (``FIRST_WINDOW`` places, then twice as many each time, up to
    ``window_places``), later paths of a hardlink as links. ``zero`` knows the blob of zeros,
    not read (None: every blob is read)."""
    if window_places < 1:
        raise ValueError("a window has at least one blob place")
    planner = _WindowPlanner(lookup, gap, read_bytes)
    size = min(FIRST_WINDOW, window_places)
    for entry in first_paths(entries):
        if isinstance(entry, Link) or entry.node.type != FILE:
            yield entry
            continue
        job, places = _file_job(entry, lookup, zero)
        planner.files.append(job)
        at = 0
        while at < len(places):  # the window filled up, and the rest in the next ones
            take = places[at : at + size - planner.places]
            planner.add(job, take)
            at += len(take)
            if planner.places >= size:
                size = min(2 * size, window_places)
                yield planner.close(carry=size // 2)
        if len(planner.files) >= window_places:  # files with no blobs (empty or failing)
            yield planner.close()
    if planner.files or planner.places:
        yield planner.close()


def _file_job(
    entry: Entry, lookup: Lookup, zero: ZeroBlob | None
) -> tuple[FileJob, list[tuple[bytes, IndexEntry, int]]]:
    """A file's job and its blob places (blob, where it is stored, offset in the file), but
    those of the blob of zeros (holes); none for a file that fails whatever is read."""
    node = entry.node
    places: list[tuple[bytes, IndexEntry, int]] = []
    offset = 0
    for blob_id in node.content:
        x = lookup(blob_id)
        if x is None:
            return FileJob(entry, 0, NotFoundError(f"blob {blob_id.hex()} is not in the index")), []
        if x.pack.blob_type != layout.DATA_BLOB:
            kind = layout.BLOB_TYPES[x.pack.blob_type]
            error = IntegrityError(f"blob {blob_id.hex()}", f"is a {kind} blob, expected data")
            return FileJob(entry, 0, error), []
        if zero is None or not zero.matches(blob_id, x.raw_length):
            places.append((blob_id, x, offset))
        offset += x.raw_length
    if offset != node.size:
        error = IntegrityError("file", f"content is {offset} bytes, the snapshot says {node.size}")
        return FileJob(entry, 0, error), []
    return FileJob(entry, len(places)), places


class _WindowPlanner:
    def __init__(self, lookup: Lookup, gap: int, read_bytes: int) -> None:
        self.lookup = lookup
        self.gap = gap
        self.read_bytes = read_bytes
        self.files: list[FileJob] = []
        self.places = 0
        self.needed: dict[bytes, Needed] = {}

    def add(self, job: FileJob, places: list[tuple[bytes, IndexEntry, int]]) -> None:
        needed = self.needed
        for blob_id, x, offset in places:
            n = needed.get(blob_id)
            if n is None:
                n = needed[blob_id] = Needed(blob_id, x, [])
            n.places.append((job, offset))
        self.places += len(places)

    def close(self, carry: int = 0) -> Window:
        """The window's reads. With ``carry``: a read shorter than ``CARRY_BYTES`` is put off
        to the next window, with the blob places it serves, while those stay within
        ``carry`` places (the first in the order the reads are made), and as long as the
        reads made come to ``BUSY_BYTES`` (the longest of those put off are made first)."""
        by_pack: dict[bytes, list[Needed]] = {}
        for n in self.needed.values():  # in the order the files first need them
            by_pack.setdefault(n.at.pack.id, []).append(n)
        reads: list[PackRead] = []
        for blobs in by_pack.values():
            blobs.sort(key=lambda n: n.at.offset)
            reads.extend(self._coalesce(blobs))
        off: dict[int, int] = {}  # reads put off (their index) and their places
        left = 0
        if carry:
            for i, pr in enumerate(reads):
                if pr.read.length < CARRY_BYTES:
                    places = sum(len(n.places) for n in pr.blobs)
                    if left + places <= carry:
                        off[i] = places
                        left += places
            made = sum(pr.read.length for i, pr in enumerate(reads) if i not in off)
            for i in sorted(off, key=lambda i: -reads[i].read.length):
                if made >= BUSY_BYTES:
                    break
                made += reads[i].read.length
                left -= off.pop(i)
        kept = {n.blob_id: n for i in sorted(off) for n in reads[i].blobs}
        window = Window(self.files, [pr for i, pr in enumerate(reads) if i not in off])
        self.files, self.places, self.needed = [], left, kept
        return window

    def _coalesce(self, blobs: list[Needed]) -> Iterator[PackRead]:
        """A pack's needed blobs (by offset) in requests: one blob after another while the gap
        before it is at most ``gap`` and the request stays within ``read_bytes``."""
        for start, end, run in coalesce(blobs, _place, self.gap, self.read_bytes):
            yield PackRead(Read(run[0].at.pack, start, end - start), run)


def _place(n: Needed) -> tuple[int, int]:
    return n.at.offset, n.at.length
