"""Which pack ranges a restore reads, in what order, and in how many requests.

Pure: from the entries to restore (in order) and the index's answers, ``schedule`` makes the
restore's jobs and each job's reads, with no I/O and no threads. The executor makes exactly
these reads; the cost estimate and the thaw of archived packs count the same (``requests``).

- Files are written in jobs: the files of one directory in batches of up to ``BATCH_FILES``
  files and ``BATCH_BYTES`` bytes (threads creating files in one directory would wait for each
  other's hold on it), and a file over ``PART_BYTES`` in parts of about that size, which
  several threads write at once. The later paths of a hardlink read nothing: they are links.
- A batch's blobs that lie close together in one pack are read with one request for the pack
  (a span), where that reads mostly the batch's own data: the files of one directory were
  backed up together.
- A file's other blobs are read in runs: blobs stored back to back in one pack, up to
  ``RUN_BYTES``, one request each. A blob the index lacks is a run alone, read by nobody: its
  file fails.
- The blob a run of zeros is cut into (``cairn.ops.restore.zeros``) is not read at all: the
  file is written with a hole there.
- A blob read alone (not larger than an eighth of the cache) is kept in a cache of
  ``CACHE_BYTES``, least recently used out first, so that a duplicate met while it is there is
  not read again. The schedule holds the model of that cache: a read that keeps its blob
  carries the slot it fills, and a blob taken from the cache the slot it is taken from, so the
  threads running the jobs in any order take exactly the blobs the schedule counted. The
  ``Keeper`` that makes the slots hears of each later take and of each slot the model pushes
  out, and frees a slot's blob once it is out and taken by all: memory stays at the cache's
  size plus the blobs of jobs in flight.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from cairn.model.hardlinks import HardlinkIndex
from cairn.model.node import FILE, Node
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.zeros import ZeroBlob
from cairn.repo.index import IndexEntry, PackInfo

BATCH_FILES = 64  # files of one directory restored in a row by one thread
BATCH_BYTES = 4 << 20
PART_BYTES = 8 << 20  # a larger file is written in parts of about this size, by several threads
RUN_BYTES = 4 << 20  # blobs stored back to back are read together, up to this many bytes
CACHE_BYTES = 8 << 20  # blobs read alone and kept, so that duplicates are read once

Lookup = Callable[[bytes], IndexEntry | None]
Located = tuple[bytes, IndexEntry]

# how a file's next blobs are had (Fetch.how)
RUN = 0  # read, with the blobs stored back to back with it: one request
CACHED = 1  # taken from the cache, where an earlier read kept it
MISSING = 2  # not in the index: the file fails
ZERO = 3  # all zeros (``ZeroBlob``): not read


class Keeper(Protocol):
    """Where the blobs the cache keeps are put (the executor's; pure scheduling has none)."""

    def new_slot(self) -> Any:
        """A place for a blob a read keeps."""

    def will_take(self, slot: Any) -> None:
        """A job now scheduled takes the blob from ``slot``."""

    def pushed_out(self, slot: Any) -> None:
        """No job scheduled from now on takes from ``slot``: free it once taken by all."""


class Read(NamedTuple):
    """One ranged read of a pack: one request."""

    pack: PackInfo
    offset: int
    length: int


class Fetch(NamedTuple):
    how: int
    blobs: tuple[tuple[bytes, IndexEntry | None], ...]  # in the file's order (one unless a run)
    read: Read | None  # a run's request
    slot: Any  # a run of one blob: the cache slot it fills (None: not kept); CACHED: taken from


class Span(NamedTuple):
    """A read of a batch's blobs that lie close together in one pack."""

    read: Read
    blobs: list[Located]  # by offset


@dataclass(slots=True)
class Batch:
    """Files of one directory, written one after the other by one thread."""

    entries: list[Entry]
    spans: list[Span]  # read first
    shared: frozenset[bytes]  # the blobs the spans hold
    fetches: list[list[Fetch]]  # for each file, how its blobs not in ``shared`` are had

    def requests(self) -> Iterator[Read]:
        for span in self.spans:
            yield span.read
        for fetches in self.fetches:
            yield from requests_of(fetches)


class Part(NamedTuple):
    offset: int  # in the file
    fetches: list[Fetch]  # for all of the part's blobs


@dataclass(slots=True)
class LargeFile:
    """A file written in parts, by several threads at once."""

    entry: Entry
    parts: list[Part]

    def requests(self) -> Iterator[Read]:
        for part in self.parts:
            yield from requests_of(part.fetches)


@dataclass(slots=True)
class Link:
    """A later path of a hardlink: a link to the first, made once every file is written."""

    entry: Entry
    first: tuple[bytes, ...]  # the first path's parts


Job = Entry | Batch | LargeFile | Link  # an Entry: a directory or a special file, made at once


def requests_of(fetches: list[Fetch]) -> Iterator[Read]:
    for f in fetches:
        if f.read is not None:
            yield f.read


def requests(
    entries: Iterable[Entry], lookup: Lookup, zero: ZeroBlob | None = None
) -> Iterator[Read]:
    """Every read of pack data that restoring ``entries`` makes, in order (the executor's jobs
    in the order they are handed out; nothing failing)."""
    for job in schedule(entries, lookup, zero=zero):
        if isinstance(job, Batch | LargeFile):
            yield from job.requests()


def first_paths(entries: Iterable[Entry]) -> Iterator[Entry | Link]:
    """``entries``, with each later path of a hardlink as a ``Link`` to its first (the file
    whose content is restored): what both schedulers start from."""
    links: HardlinkIndex[tuple[bytes, ...]] = HardlinkIndex()
    for entry in entries:
        node = entry.node
        first = links.first(node, entry.parts) if node.type == FILE else None
        yield entry if first is None else Link(entry, first)


def schedule(
    entries: Iterable[Entry],
    lookup: Lookup,
    keeper: Keeper | None = None,
    zero: ZeroBlob | None = None,
) -> Iterator[Job]:
    """The jobs of restoring ``entries``, as they are taken: directories and special files as
    they come, files in batches and large files in parts, later paths of a hardlink as links.
    ``keeper`` makes the places where blobs the cache keeps are put (the executor's); ``zero``
    knows the blob of zeros, not read (None: every blob is read)."""
    scheduler = Scheduler(lookup, keeper, zero=zero)
    batcher = _Batcher()
    for entry in first_paths(entries):
        if isinstance(entry, Link) or entry.node.type != FILE:
            yield entry
            continue
        node = entry.node
        parts = split(node, lookup)
        if parts is not None:
            done = batcher.flush()
            if done:
                yield scheduler.batch(done)
            yield LargeFile(entry, [Part(at, scheduler.fetches(ids)) for ids, at in parts])
            continue
        done = batcher.add(entry)
        if done:
            yield scheduler.batch(done)
    done = batcher.flush()
    if done:
        yield scheduler.batch(done)


def split(node: Node, lookup: Lookup) -> list[tuple[list[bytes], int]] | None:
    """The parts a large file is written in, by several threads: (its blobs, offset in the
    file). None for a file written whole: one of at most ``PART_BYTES``, or one whose blobs the
    index lacks or whose size they do not make (it fails with its own error)."""
    if node.size <= PART_BYTES:
        return None
    parts: list[tuple[list[bytes], int]] = []
    first = start = offset = 0
    content = node.content
    last = len(content) - 1
    for i, blob_id in enumerate(content):
        found = lookup(blob_id)
        if found is None:
            return None
        offset += found.raw_length
        if offset - start >= PART_BYTES or i == last:
            parts.append((content[first : i + 1], start))
            first, start = i + 1, offset
    return parts if len(parts) > 1 and offset == node.size else None


class Scheduler:
    """The reads of each job, in the order the jobs are handed out, with the model of the blob
    cache they share."""

    def __init__(
        self,
        lookup: Lookup,
        keeper: Keeper | None = None,
        cache_bytes: int = CACHE_BYTES,
        zero: ZeroBlob | None = None,
    ) -> None:
        self._lookup = lookup
        self._keeper = keeper
        self._zero = zero
        self._max = cache_bytes
        self._cache: OrderedDict[bytes, tuple[int, Any]] = OrderedDict()  # id -> (size, slot)
        self._cached = 0

    def batch(self, entries: list[Entry]) -> Batch:
        found: dict[bytes, IndexEntry | None] = {}
        spans = self._spans(entries, found)
        shared = frozenset(blob_id for span in spans for blob_id, _ in span.blobs)
        fetches = [
            self.fetches([b for b in e.node.content if b not in shared], found) for e in entries
        ]
        return Batch(entries, spans, shared, fetches)

    def fetches(
        self, blob_ids: list[bytes], found: dict[bytes, IndexEntry | None] | None = None
    ) -> list[Fetch]:
        """How ``blob_ids`` are had, in order: in runs, from the cache, as zeros or not at all.
        ``found``: index answers known already."""
        lookup = self._lookup
        zero = self._zero
        out: list[Fetch] = []
        run: list[Located] = []
        pack_id = b""
        start = end = 0
        for blob_id in blob_ids:
            x = found[blob_id] if found is not None and blob_id in found else lookup(blob_id)
            if x is None:
                if run:
                    out.append(self._run(run, start, end))
                    run = []
                out.append(Fetch(MISSING, ((blob_id, None),), None, None))
                continue
            if zero is not None and zero.matches(blob_id, x.raw_length):
                if run:
                    out.append(self._run(run, start, end))
                    run = []
                out.append(Fetch(ZERO, ((blob_id, x),), None, None))
                continue
            if (
                run
                and x.offset == end
                and x.pack.id == pack_id
                and end - start + x.length <= (RUN_BYTES)
            ):
                run.append((blob_id, x))
                end += x.length
                continue
            if run:
                out.append(self._run(run, start, end))
            run = [(blob_id, x)]
            pack_id, start, end = x.pack.id, x.offset, x.offset + x.length
        if run:
            out.append(self._run(run, start, end))
        return out

    def _run(self, run: list[Located], start: int, end: int) -> Fetch:
        blob_id, x = run[0]
        if len(run) > 1:
            return Fetch(RUN, tuple(run), Read(x.pack, start, end - start), None)
        cache = self._cache
        keeper = self._keeper
        hit = cache.get(blob_id)
        if hit is not None:
            cache.move_to_end(blob_id)
            if keeper is not None:
                keeper.will_take(hit[1])
            return Fetch(CACHED, ((blob_id, x),), None, hit[1])
        slot = None
        size = x.raw_length
        if size <= self._max // 8:
            slot = keeper.new_slot() if keeper is not None else None
            cache[blob_id] = (size, slot)
            self._cached += size
            while self._cached > self._max:
                _, (n, out) = cache.popitem(last=False)
                self._cached -= n
                if keeper is not None:
                    keeper.pushed_out(out)
        return Fetch(RUN, ((blob_id, x),), Read(x.pack, start, end - start), slot)

    def _spans(self, entries: list[Entry], found: dict[bytes, IndexEntry | None]) -> list[Span]:
        """For a batch of small files, the pack ranges read in one request each. Files of one
        directory were stored together, so one range per pack covers them; a range that would
        be mostly other data is not read this way. Fills ``found`` with the index's answers."""
        if len(entries) < 2 or sum(e.node.size for e in entries) > BATCH_BYTES:
            return []
        lookup = self._lookup
        by_pack: dict[bytes, list[Located]] = {}
        for e in entries:
            for blob_id in e.node.content:
                if blob_id in found:
                    continue
                x = found[blob_id] = lookup(blob_id)
                if x is not None:
                    by_pack.setdefault(x.pack.id, []).append((blob_id, x))
        spans = []
        for blobs in by_pack.values():
            if len(blobs) < 2:
                continue
            blobs.sort(key=lambda b: b[1].offset)
            start = blobs[0][1].offset
            end = max(x.offset + x.length for _, x in blobs)
            if end - start <= 2 * sum(x.length for _, x in blobs) + (64 << 10):
                spans.append(Span(Read(blobs[0][1].pack, start, end - start), blobs))
        return spans


class _Batcher:
    """Groups files to restore: consecutive files of one directory, up to ``BATCH_FILES`` files
    and ``BATCH_BYTES`` bytes; a file that does not fit starts the next batch."""

    def __init__(self) -> None:
        self.batch: list[Entry] = []
        self.size = 0

    def add(self, entry: Entry) -> list[Entry] | None:
        """Adds a file; returns the batch it closed, if any."""
        done = None
        b = self.batch
        if b and (
            b[-1].parts[:-1] != entry.parts[:-1]
            or len(b) >= BATCH_FILES
            or self.size + entry.node.size > BATCH_BYTES
        ):
            done = self.flush()
        self.batch.append(entry)
        self.size += entry.node.size
        return done

    def flush(self) -> list[Entry]:
        done, self.batch, self.size = self.batch, [], 0
        return done
