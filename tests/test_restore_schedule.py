"""The restore's read scheduler, pure: jobs and reads from entries and index answers alone."""

from __future__ import annotations

from cairn.model.node import DIR, FILE, SYMLINK, Node
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.schedule import (
    BATCH_FILES,
    CACHED,
    MISSING,
    RUN,
    RUN_BYTES,
    Batch,
    LargeFile,
    Link,
    Read,
    Scheduler,
    requests,
    schedule,
)
from cairn.repo.index import IndexEntry, PackInfo

KiB, MiB = 1 << 10, 1 << 20
PACK_A = PackInfo(b"a" * 32, b"s" * 32, 0)
PACK_B = PackInfo(b"b" * 32, b"s" * 32, 0)


class Index:
    """Blobs laid out in packs one after the other, as a backup writes them."""

    def __init__(self) -> None:
        self.entries: dict[bytes, IndexEntry] = {}
        self.ends: dict[bytes, int] = {}

    def add(self, name: str, pack: PackInfo, length: int, raw: int | None = None) -> bytes:
        blob_id = name.encode().ljust(32, b".")
        at = self.ends.get(pack.id, 0)
        self.entries[blob_id] = IndexEntry(pack, at, length, length if raw is None else raw)
        self.ends[pack.id] = at + length
        return blob_id

    def skip(self, pack: PackInfo, length: int) -> None:
        self.ends[pack.id] = self.ends.get(pack.id, 0) + length

    def get(self, blob_id: bytes) -> IndexEntry | None:
        return self.entries.get(blob_id)


def file(parts: tuple[bytes, ...], content: list[bytes], index: Index, **kw: int) -> Entry:
    size = sum(index.entries[b].raw_length for b in content if b in index.entries)
    node = Node(parts[-1], FILE, size=size, content=content, **kw)  # type: ignore[arg-type]
    return Entry(b"/" + b"/".join(parts), parts, node)


def test_blobs_back_to_back_are_one_read_up_to_the_run_limit() -> None:
    index = Index()
    ids = [index.add(f"x{i}", PACK_A, MiB + 1) for i in range(5)]
    fetches = Scheduler(index.get).fetches(ids)
    assert [len(f.blobs) for f in fetches] == [3, 2]  # 4 MiB at most per read
    assert all(f.how == RUN and f.slot is None for f in fetches)
    assert fetches[0].read == Read(PACK_A, 0, 3 * (MiB + 1))
    assert fetches[0].read.length <= RUN_BYTES


def test_a_gap_or_another_pack_breaks_a_run_and_a_missing_blob_reads_nothing() -> None:
    index = Index()
    a = index.add("a", PACK_A, 100)
    index.skip(PACK_A, 10)
    b = index.add("b", PACK_A, 100)
    c = index.add("c", PACK_B, 100)
    fetches = Scheduler(index.get).fetches([a, b, b"missing".ljust(32), c])
    assert [f.how for f in fetches] == [RUN, RUN, MISSING, RUN]
    assert [f.read for f in fetches] == [
        Read(PACK_A, 0, 100),
        Read(PACK_A, 110, 100),
        None,
        Read(PACK_B, 0, 100),
    ]


def test_a_blob_read_alone_is_kept_and_taken_from_the_cache_until_it_is_pushed_out() -> None:
    index = Index()
    small = index.add("small", PACK_A, 10 * KiB)
    index.skip(PACK_A, 1)
    big = index.add("big", PACK_A, 2 * MiB)  # over an eighth of the cache: never kept
    others = []
    for i in range(9):
        index.skip(PACK_B, 1)
        others.append(index.add(f"o{i}", PACK_B, MiB))
    keeper = _Keeper()
    s = Scheduler(index.get, keeper)
    first = s.fetches([small])[0]
    assert first.how == RUN and first.slot == 0
    again = s.fetches([small])[0]
    assert again.how == CACHED and again.slot == 0 and again.read is None
    assert keeper.takes == [0]
    assert [f.slot for f in s.fetches([big, big])] == [None, None]  # read twice
    assert keeper.out == []
    s.fetches(others)  # 9 MiB of other kept blobs push it out
    assert keeper.out[0] == 0  # the oldest first
    assert s.fetches([small])[0].how == RUN


class _Keeper:
    def __init__(self) -> None:
        self.made = 0
        self.takes: list[int] = []
        self.out: list[int] = []

    def new_slot(self) -> int:
        self.made += 1
        return self.made - 1

    def will_take(self, slot: int) -> None:
        self.takes.append(slot)

    def pushed_out(self, slot: int) -> None:
        self.out.append(slot)


def test_files_of_one_directory_are_batched_and_share_span_reads() -> None:
    index = Index()
    entries = []
    for i in range(BATCH_FILES + 3):
        blob = index.add(f"f{i}", PACK_A, 1 * KiB)
        index.skip(PACK_A, 100)  # not back to back: no run, but close enough for a span
        entries.append(file((b"d", b"f%d" % i), [blob], index))
    other = file((b"e", b"g"), [index.add("g", PACK_A, KiB)], index)
    jobs = list(schedule([*entries, other], index.get))
    assert [type(j) for j in jobs] == [Batch, Batch, Batch]
    first, second, third = jobs
    assert isinstance(first, Batch) and isinstance(second, Batch) and isinstance(third, Batch)
    assert len(first.entries) == BATCH_FILES and len(second.entries) == 3
    assert len(first.spans) == 1 and first.shared == {e.node.content[0] for e in first.entries}
    assert all(f == [] for f in first.fetches)  # every blob in the span
    assert list(first.requests()) == [first.spans[0].read]
    assert third.entries == [other] and not third.spans  # a batch of one file: no span


def test_a_large_file_is_written_in_parts_and_later_hardlinks_read_nothing() -> None:
    index = Index()
    content = [index.add(f"x{i}", PACK_A, 3 * MiB) for i in range(6)]
    big = file((b"big",), content, index, inode=7, dev=1, links=2)
    link = file((b"link",), content, index, inode=7, dev=1, links=2)
    top = Entry(b"/d", (b"d",), Node(b"d", DIR))
    sym = Entry(b"/d/s", (b"d", b"s"), Node(b"s", SYMLINK, target=b"x"))
    jobs = list(schedule([top, sym, big, link], index.get))
    assert jobs[:2] == [top, sym]
    large, later = jobs[2], jobs[3]
    assert isinstance(large, LargeFile) and isinstance(later, Link)
    assert [p.offset for p in large.parts] == [0, 9 * MiB]
    assert later.first == (b"big",)
    assert list(requests([top, sym, big, link], index.get)) == list(large.requests())
    assert sum(r.length for r in large.requests()) == 18 * MiB
