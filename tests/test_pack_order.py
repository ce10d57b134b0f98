"""Restoring in pack order: the plan (pure: windows, reads by pack, gaps) and restores through it
(round trips, damage, many open files, counts of requests)."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bench.shape_proxy import ShapedLink

from cairn.core.errors import NotFoundError
from cairn.model.node import DIR, FILE, Node
from cairn.ops.progress import NullProgress
from cairn.ops.restore import Planner, RestoreOptions, Tally, reads, restore_entries, zero_blob
from cairn.ops.restore import requests as file_by_file
from cairn.ops.restore.packexec import PackExecutor, _Ahead
from cairn.ops.restore.packorder import BUSY_BYTES, FIRST_WINDOW, Window, schedule
from cairn.ops.restore.packorder import requests as packorder_requests
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.schedule import Link
from cairn.ops.restore.writer import FileWriter
from cairn.repo import layout
from cairn.repo.index import PackInfo
from cairn.repo.repository import Repository
from cairn.storage.faulty import FaultyStorage
from cairn.storage.local import LocalStorage
from tests.craft import (
    PASSWORD,
    blobs_in_pack,
    create_repo,
    files_below,
    flip_bit,
    locate,
    only_snapshot,
    regular_files,
)
from tests.test_restore_schedule import PACK_A, PACK_B, Index, file

KiB, MiB = 1 << 10, 1 << 20
PACK_TREES = PackInfo(b"t" * 32, b"s" * 32, layout.TREE_BLOB)


def _windows(jobs: list[object]) -> list[Window]:
    return [j for j in jobs if isinstance(j, Window)]


# ------------------------------------------------------------------------------- the plan
def test_a_window_reads_each_pack_once_in_the_order_its_files_first_need_them() -> None:
    index = Index()
    a = [index.add(f"a{i}", PACK_A, 10 * KiB) for i in range(4)]
    b = [index.add(f"b{i}", PACK_B, 10 * KiB) for i in range(4)]
    # files take blobs from both packs, interleaved: file by file this would be 8 reads
    entries = [file((b"d", f"f{i}".encode()), [b[i], a[i]], index) for i in range(4)]
    jobs = list(schedule(entries, index.get, gap=0))
    (window,) = _windows(jobs)
    assert [f.entry for f in window.files] == entries
    assert [(r.read.pack, r.read.offset, r.read.length) for r in window.reads] == [
        (PACK_B, 0, 40 * KiB),
        (PACK_A, 0, 40 * KiB),
    ]
    assert all(f.left == 2 and f.error is None for f in window.files)
    # every blob goes to its file, at its offset
    places = {
        (n.blob_id, f.entry.parts[-1], off)
        for r in window.reads
        for n in r.blobs
        for f, off in n.places
    }
    assert (a[2], b"f2", 10 * KiB) in places and (b[2], b"f2", 0) in places
    assert len(places) == 8


def test_gaps_up_to_the_limit_are_read_through_and_requests_stay_within_their_size() -> None:
    index = Index()
    x = index.add("x", PACK_A, 10 * KiB)
    index.skip(PACK_A, 20 * KiB)
    y = index.add("y", PACK_A, 10 * KiB)
    index.skip(PACK_A, 100 * KiB)
    z = index.add("z", PACK_A, 10 * KiB)
    entries = [file((b"f",), [x, y, z], index)]
    spans = lambda gap, size=8 * MiB: [  # noqa: E731
        (r.offset, r.length) for r in requests_of(entries, index, gap, size)
    ]
    assert spans(0) == [(0, 10 * KiB), (30 * KiB, 10 * KiB), (140 * KiB, 10 * KiB)]
    assert spans(20 * KiB) == [(0, 40 * KiB), (140 * KiB, 10 * KiB)]
    assert spans(100 * KiB) == [(0, 150 * KiB)]
    assert spans(100 * KiB, size=64 * KiB) == [(0, 40 * KiB), (140 * KiB, 10 * KiB)]


def requests_of(entries: list[Entry], index: Index, gap: int, size: int) -> list:  # type: ignore[type-arg]
    return [
        r.read
        for w in _windows(list(schedule(entries, index.get, gap, read_bytes=size)))
        for r in w.reads
    ]


def test_a_blob_used_twice_in_a_window_is_read_once_for_both_places() -> None:
    index = Index()
    same = index.add("same", PACK_A, 10 * KiB)
    other = index.add("other", PACK_A, 10 * KiB)
    entries = [
        file((b"one",), [same, same], index),
        file((b"two",), [other, same], index),
    ]
    (window,) = _windows(list(schedule(entries, index.get, gap=0)))
    (read,) = window.reads
    assert read.read.length == 20 * KiB
    by_blob = {
        n.blob_id: sorted((f.entry.parts[-1], off) for f, off in n.places) for n in read.blobs
    }
    assert by_blob == {
        same: [(b"one", 0), (b"one", 10 * KiB), (b"two", 10 * KiB)],
        other: [(b"two", 0)],
    }
    assert [f.left for f in window.files] == [2, 2]


def test_windows_close_at_their_number_of_blob_places_and_a_large_file_spans_several() -> None:
    index = Index()
    ids = [index.add(f"b{i}", PACK_A, KiB) for i in range(10)]
    big = file((b"big",), ids[:7], index)
    small = file((b"small",), ids[7:], index)
    windows = _windows(list(schedule([big, small], index.get, gap=0, window_places=3)))
    assert [sum(len(n.places) for r in w.reads for n in r.blobs) for w in windows] == [3, 3, 3, 1]
    # the large file is met (and its job made) once, in the first window; the small one after
    assert [[f.entry for f in w.files] for w in windows] == [[big], [], [small], []]
    assert windows[0].files[0].left == 7 and windows[2].files[0].left == 3


def test_windows_grow_from_the_first_size_to_the_bound_whatever_the_timing() -> None:
    index = Index()
    ids = [index.add(f"b{i}", PACK_A, KiB) for i in range(20 * FIRST_WINDOW)]
    entries = [file((f"f{i}".encode(),), [b], index) for i, b in enumerate(ids)]
    windows = _windows(list(schedule(entries, index.get, gap=0, window_places=4 * FIRST_WINDOW)))
    # FIRST_WINDOW places, then twice as many each time, up to the bound; every window reads
    # its blobs (less than BUSY_BYTES: none is put off)
    assert [len(w.files) // FIRST_WINDOW for w in windows] == [1, 2, 4, 4, 4, 4, 1]
    assert [len(w.reads) for w in windows] == [1] * 7
    places = [f.entry for w in windows for r in w.reads for n in r.blobs for f, _ in n.places]
    assert places == entries  # every blob read once, for its file
    # the estimate counts exactly these
    counted = list(packorder_requests(entries, index.get, 0, None, 4 * FIRST_WINDOW))
    assert counted == [r.read for w in windows for r in w.reads]


def test_a_short_read_put_off_to_the_next_window_joins_its_reads_of_the_same_pack() -> None:
    index = Index()
    big = index.add("big", PACK_B, BUSY_BYTES + MiB)
    a0, a1 = index.add("a0", PACK_A, KiB), index.add("a1", PACK_A, KiB)
    entries = [file((f"f{i}".encode(),), [x], index) for i, x in enumerate([big, a0, a1])]
    # windows of two places; half a window (one place) may be put off: a0's read, short, while
    # the window reads BUSY_BYTES without it
    windows = _windows(list(schedule(entries, index.get, gap=0, window_places=2)))
    reads = [[(r.read.pack, r.read.offset, r.read.length) for r in w.reads] for w in windows]
    assert reads == [[(PACK_B, 0, BUSY_BYTES + MiB)], [(PACK_A, 0, 2 * KiB)]]
    assert [[f.entry for f in w.files] for w in windows] == [entries[:2], entries[2:]]
    # without the large read, the window makes its short one too: the link has work at once
    c = index.add("c", PACK_B, KiB)
    entries = [file((f"f{i}".encode(),), [x], index) for i, x in enumerate([a0, c, a1])]
    windows = _windows(list(schedule(entries, index.get, gap=0, window_places=2)))
    reads = [[(r.read.pack, r.read.offset, r.read.length) for r in w.reads] for w in windows]
    assert reads == [
        [(PACK_A, 0, KiB), (PACK_B, BUSY_BYTES + MiB, KiB)],
        [(PACK_A, KiB, KiB)],
    ]


def test_files_that_cannot_be_restored_fail_whatever_is_read() -> None:
    index = Index()
    ok = index.add("ok", PACK_A, KiB)
    tree = index.add("tree", PACK_TREES, KiB)
    missing = b"m" * 32
    entries = [
        file((b"missing",), [ok, missing], index),
        file((b"tree",), [tree], index),
        Entry(b"/short", (b"short",), Node(b"short", FILE, size=5 * KiB, content=[ok])),
        file((b"fine",), [ok], index),
    ]
    (window,) = _windows(list(schedule(entries, index.get, gap=0)))
    jobs = {f.entry.parts[-1]: f for f in window.files}
    assert "not in the index" in str(jobs[b"missing"].error)
    assert "tree blob" in str(jobs[b"tree"].error)
    assert "says 5120" in str(jobs[b"short"].error)
    assert jobs[b"fine"].error is None and jobs[b"fine"].left == 1
    assert all(j.left == 0 for name, j in jobs.items() if name != b"fine")
    (read,) = window.reads
    assert [f.entry.parts[-1] for n in read.blobs for f, _ in n.places] == [b"fine"]


def test_directories_come_as_they_are_met_and_later_paths_of_a_hardlink_as_links() -> None:
    index = Index()
    x = index.add("x", PACK_A, KiB)
    d = Entry(b"/d", (b"d",), Node(b"d", DIR))
    first = file((b"d", b"a"), [x], index, inode=7, links=2, dev=1)
    second = file((b"d", b"b"), [x], index, inode=7, links=2, dev=1)
    jobs = list(schedule([d, first, second], index.get, gap=0))
    assert jobs[0] is d
    assert isinstance(jobs[1], Link) and jobs[1].first == (b"d", b"a")
    (window,) = _windows(jobs)
    assert [f.entry for f in window.files] == [first]


# ------------------------------------------------------------------------------- restores
def _tree(root: Path, seed: int = 1) -> dict[str, bytes]:
    """Small files in many directories, a few large ones, duplicates, a sparse file, empties."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for d in range(12):
        for i in range(15):
            files[f"d{d:02d}/f{i:02d}.txt"] = f"{d} {i} ".encode() * rng.randrange(1, 3000)
    files["big/one.bin"] = rng.randbytes(5 * MiB)
    files["big/copy.bin"] = files["big/one.bin"]
    files["big/mixed.bin"] = files["d03/f04.txt"] * 300 + rng.randbytes(2 * MiB)
    files["empty"] = b""
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    with open(root / "sparse.bin", "wb") as f:
        f.seek(20 * MiB)
        f.write(b"tail")
    files["sparse.bin"] = bytes(20 * MiB) + b"tail"
    os.chmod(root / "d01/f01.txt", 0o444)  # read-only: created writable, chmod at the end
    os.chmod(root / "d02/f02.txt", 0o4755)
    os.link(root / "big/one.bin", root / "big/hardlink.bin")
    files["big/hardlink.bin"] = files["big/one.bin"]
    return files


def _restore(repo_dir: Path, src: Path, target: Path, **options: object):  # type: ignore[no-untyped-def]
    """A restore in pack order of ``src`` from the only snapshot: (summary, tally, the data
    reads it made as (pack, offset, length), the ones ``reads`` counted)."""
    storage = FaultyStorage(LocalStorage(repo_dir))
    repo = Repository.open(storage, PASSWORD)
    repo.load_index()
    tally = Tally(NullProgress())
    plan = list(Planner(repo, on_problem=tally.tree_problem).plan(only_snapshot(repo), str(src)))
    opts = RestoreOptions(pack_order=True, **options)  # type: ignore[arg-type]
    counted = [
        (layout.pack_name(r.pack.id.hex()), r.offset, r.length)
        for r in reads(
            plan, repo.index.get, True, opts.read_gap, zero_blob(repo), opts.window_places
        )
    ]
    start = len(storage.log)
    summary = restore_entries(repo, plan, str(target), opts, tally)
    made = [
        (c.name, c.offset, c.length)
        for c in storage.log[start:]
        if c.op in ("read", "read_into") and c.name.startswith(layout.DATA)
    ]
    return summary, tally, made, counted


@pytest.fixture
def backed_up(tmp_path: Path, run_cli):  # type: ignore[no-untyped-def]
    repo_dir = create_repo(tmp_path / "repo")  # 1 MiB packs: many of them
    src = tmp_path / "src"
    files = _tree(src)
    assert run_cli("backup", "--repo", repo_dir, src).code == 0
    return repo_dir, src, files


def test_a_restore_in_pack_order_is_the_tree_reading_each_range_once(
    tmp_path, backed_up, run_cli, monkeypatch
):  # type: ignore[no-untyped-def]
    repo_dir, src, files = backed_up
    out = tmp_path / "out"
    # windows small enough that packs are needed in several of them
    summary, _, made, counted = _restore(
        repo_dir, src, out, workers=4, verify=True, window_places=150
    )
    assert summary.errors == 0 and summary.verified == len(files)  # a hardlink too
    assert regular_files(out) == files
    assert sorted(made) == sorted(counted)  # the cost estimate counts what is read
    assert len(set(made)) == len(made), "a range was read twice"
    assert (out / "d01/f01.txt").stat().st_mode & 0o7777 == 0o444
    assert (out / "d02/f02.txt").stat().st_mode & 0o7777 == 0o4755
    assert (out / "big/one.bin").stat().st_ino == (out / "big/hardlink.bin").stat().st_ino
    assert os.stat(out / "sparse.bin").st_blocks * 512 < MiB, "the sparse file was filled"
    # the same restore file by file makes more requests for the same bytes
    res = run_cli(
        "restore",
        "--repo",
        repo_dir,
        f"latest:{src}",
        "--target",
        tmp_path / "byfile",
        "--read-order",
        "file",
    )
    assert res.code == 0
    assert regular_files(tmp_path / "byfile") == files
    by_file = _restore_count(repo_dir, src, tmp_path / "byfile2")
    assert len(made) < by_file


def _restore_count(repo_dir: Path, src: Path, target: Path) -> int:
    repo = Repository.open(LocalStorage(repo_dir), PASSWORD)
    repo.load_index()
    plan = list(Planner(repo).plan(only_snapshot(repo), str(src)))
    return sum(1 for _ in file_by_file(plan, repo.index.get))


def test_few_open_files_at_once_still_restore_every_file(tmp_path, backed_up, monkeypatch):  # type: ignore[no-untyped-def]
    """With one file open at most, files whose blobs come from many packs are closed and
    opened again, and read-only ones too (as a user who is not root could not)."""
    repo_dir, src, files = backed_up
    monkeypatch.setattr(PackExecutor, "open_files", 1)
    reopened: list[bytes] = []
    reopen = FileWriter.reopen

    def counting(self, entry):  # type: ignore[no-untyped-def]
        reopened.append(entry.parts[-1])
        return reopen(self, entry)

    monkeypatch.setattr(FileWriter, "reopen", counting)
    out = tmp_path / "out"
    summary, _, _, _ = _restore(repo_dir, src, out, workers=1, window_places=40)
    assert summary.errors == 0
    assert reopened, "no file was closed and opened again"
    assert regular_files(out) == files
    assert (out / "d01/f01.txt").stat().st_mode & 0o7777 == 0o444


def test_a_damaged_blob_fails_only_the_files_that_have_it(tmp_path, backed_up):  # type: ignore[no-untyped-def]
    repo_dir, src, files = backed_up
    repo = Repository.open(LocalStorage(repo_dir), PASSWORD)
    repo.load_index()
    snap = only_snapshot(repo)
    nodes = files_below(repo, snap, src)
    bad = nodes["d05/f07.txt"].content[0]
    place = locate(repo, bad)
    flip_bit(repo_dir / place.pack_name, place.offset + place.length // 2, bit=2)
    hit = {rel for rel, n in nodes.items() if n.type == FILE and bad in n.content}
    out = tmp_path / "out"
    summary, _, _, _ = _restore(repo_dir, src, out, workers=3)
    restored = regular_files(out)
    assert summary.errors == len(hit)
    assert set(restored) == set(files) - hit, "a file without the damaged blob was lost"
    assert all(files[rel] == data for rel, data in restored.items())


def test_a_truncated_pack_fails_the_files_whose_blobs_were_cut_off(tmp_path, backed_up):  # type: ignore[no-untyped-def]
    """The request covering the end of the pack comes back short: each blob is read alone,
    so those before the cut still restore their files."""
    repo_dir, src, files = backed_up
    repo = Repository.open(LocalStorage(repo_dir), PASSWORD)
    repo.load_index()
    snap = only_snapshot(repo)
    nodes = files_below(repo, snap, src)
    place = locate(repo, nodes["d07/f03.txt"].content[0])
    cut = place.offset + place.length // 2
    os.truncate(repo_dir / place.pack_name, cut)
    lost = {b for b, p in blobs_in_pack(repo, place.pack_id).items() if p.offset + p.length > cut}
    hit = {rel for rel, n in nodes.items() if n.type == FILE and lost & set(n.content)}
    out = tmp_path / "out"
    summary, _, _, _ = _restore(repo_dir, src, out)
    restored = regular_files(out)
    assert hit and summary.errors == len(hit)
    assert set(restored) == set(files) - hit
    assert all(files[rel] == data for rel, data in restored.items())


def test_a_restore_from_s3_over_a_slow_link_that_drops_connections(tmp_path, s3_url, run_cli):  # type: ignore[no-untyped-def]
    """Through a shaped link (5 ms each way) that resets a connection part-way through a
    response every 4 MiB of data: the lost reads are made again and the tree comes back whole,
    in pack order (the default on S3) and file by file."""
    src = tmp_path / "src"
    files = _tree(src, seed=2)
    assert run_cli("init", "--repo", s3_url).code == 0
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    endpoint = urlsplit(s3_url[len("s3:") :])
    with ShapedLink(endpoint.port, rtt_ms=10, mbit=0, reset_every_bytes=4 * MiB) as link:
        shaped = s3_url.replace(f":{endpoint.port}/", f":{link.port}/")
        for order in ("pack", "file"):
            out = tmp_path / order
            res = run_cli(
                "restore", "--repo", shaped, f"latest:{src}", "--target", out, "--read-order", order
            )
            assert res.code == 0, res.err
            assert regular_files(out) == files
        assert link.resets >= 4


def test_the_plan_made_ahead_hands_its_jobs_in_order_then_its_error_and_stops_when_closed() -> None:
    index = Index()
    # two full windows and five places more
    ids = [index.add(f"b{i}", PACK_A, KiB) for i in range(3 * FIRST_WINDOW + 5)]
    entries = [file((f"f{i}".encode(),), [b], index) for i, b in enumerate(ids)]
    d = Entry(b"/d", (b"d",), Node(b"d", DIR))

    def failing():  # type: ignore[no-untyped-def]
        yield d
        yield from entries
        raise NotFoundError("a tree cannot be read")

    jobs = list(schedule(iter([d, *entries]), index.get, gap=0))
    taken: list[object] = []
    with pytest.raises(NotFoundError, match="a tree cannot be read"):
        for job in _Ahead(schedule(failing(), index.get, gap=0)):
            taken.append(job)
    # every job made before the error, in order (the last window is not closed: it failed)
    assert len(jobs) == 4 and isinstance(jobs[-1], Window)
    assert taken[0] is d and [len(w.files) for w in taken[1:]] == [len(w.files) for w in jobs[1:-1]]

    closed = threading.Event()

    def endless():  # type: ignore[no-untyped-def]
        try:
            while True:
                yield from entries
        finally:
            closed.set()

    ahead = _Ahead(schedule(endless(), index.get, gap=0))
    first = next(iter(ahead))
    assert isinstance(first, Window)
    ahead.close()  # the plan stops and its entries are closed
    assert closed.is_set()
