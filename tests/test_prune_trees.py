"""Prune and check read the trees a tree pack at a time: one request per pack (or per range of
its trees), not one per tree, on the local backend and on the real SeaweedFS S3 server; a
damaged tree pack is reported as a read of its tree alone would report it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.app.context import StackHooks, StoreOptions, backend_for, stack_hooks, wrap_backend
from cairn.core.errors import IntegrityError, NotFoundError
from cairn.repo import layout
from cairn.repo.layout import TREE_BLOB
from cairn.repo.packcache import PackCache
from cairn.repo.repository import Repository
from cairn.storage.base import Storage, StorageWrapper
from cairn.storage.metered import MeteredStorage
from tests.conftest import PASSWORD
from tests.craft import flip_bit

SMALL_PACKS = "64K"  # the smallest: a few hundred trees fill a tree pack


class Reads(StorageWrapper):
    """Remembers the name of every object read (each read is one GET)."""

    def __init__(self, inner: Storage, seen: list[str]) -> None:
        super().__init__(inner)
        self.seen = seen

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self.seen.append(name)
        return self.inner.read(name, offset, length)


class Recorder:
    """Every store the commands open records its reads in ``seen``, and counts its requests
    (``meters``: one per command run)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.meters: list[MeteredStorage] = []

    def wrap(self, backend: Storage) -> Storage:
        self.meters.append(MeteredStorage(backend, getattr(backend, "listed_bytes", None)))
        return Reads(self.meters[-1], self.seen)

    def reads_of(self, names: set[str]) -> int:
        return sum(1 for n in self.seen if n in names)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    with stack_hooks(StackHooks(wrappers=(rec.wrap,))):
        yield rec


def open_repo(url: str) -> Repository:
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    repo = Repository.open(storage, PASSWORD.encode())
    repo.load_index()
    return repo


def tree_packs(url: str) -> tuple[set[str], int]:
    """The names of the tree packs, and how many tree blobs they hold."""
    repo = open_repo(url)
    packs = {p.id for p in repo.index.packs if p.blob_type == layout.TREE_BLOB}
    blobs = sum(1 for b in repo.index.blob_ids() if repo.index.get(b).pack.id in packs)  # type: ignore[union-attr]
    return {layout.pack_name(p.hex()) for p in packs}, blobs


def many_directories(root: Path, day: int) -> None:
    """300 directories of one small file each, over two levels; every third file changes each
    day (so each backup writes new trees for them and their parents)."""
    for a in range(20):
        for b in range(15):
            d = root / f"a{a:02}" / f"b{b:02}"
            d.mkdir(parents=True, exist_ok=True)
            version = day if (a * 15 + b) % 3 == day % 3 else 0
            (d / "f.txt").write_text(f"{a} {b} {version}\n")


@pytest.fixture
def backed_up(tmp_path: Path, repo_url: str, run_cli) -> tuple[str, Path]:  # type: ignore[no-untyped-def]
    """Three snapshots of 300 directories in a repository of small packs."""
    src = tmp_path / "src"
    assert run_cli("init", "--repo", repo_url, "--pack-size", SMALL_PACKS).code == 0
    for day in range(3):
        many_directories(src, day)
        res = run_cli("backup", "--repo", repo_url, src)
        assert res.code == 0, res.err
    return repo_url, src


def test_a_prune_that_removes_nothing_reads_each_tree_pack_once(backed_up, run_cli, recorder):
    url, _ = backed_up
    names, blobs = tree_packs(url)
    assert len(names) >= 3 and blobs >= 3 * len(names) and blobs > 500  # many trees per pack
    dry = run_cli("prune", "--repo", url, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert recorder.reads_of(names) <= len(names) + 1
    recorder.seen.clear()
    res = run_cli("prune", "--repo", url, "--json")
    assert res.code == 0, res.err
    report = res.json()
    assert report["packs_deleted"] == report["packs_repacked"] == 0
    assert recorder.reads_of(names) <= len(names) + 1
    # the dry run's estimate is the prune's requests, opening and operation record included
    made = recorder.meters[-1].snapshot()
    q = dry.json()["requests"]
    assert (q["get"], q["list"], q["put"], q["delete"]) == (
        made.get,
        made.list,
        made.put,
        made.delete,
    )
    assert q["bytes_down"] <= made.bytes_down


def test_a_prune_that_removes_snapshots_reads_each_tree_pack_once(backed_up, run_cli, recorder):
    url, _ = backed_up
    ids = [s["id"] for s in run_cli("snapshots", "--repo", url, "--json").json()]
    assert run_cli("forget", "--repo", url, ids[0], ids[1]).code == 0
    names, _ = tree_packs(url)
    dry = run_cli("prune", "--repo", url, "--max-unused", "0.2", "--dry-run", "--json")
    recorder.seen.clear()
    res = run_cli("prune", "--repo", url, "--max-unused", "0.2", "--json")
    assert res.code == 0, res.err
    report = res.json()
    assert report["blobs_removed"] > 100 and report["packs_deleted"] + report["packs_repacked"]
    # each tree pack read once to plan, and once more if it is repacked
    assert recorder.reads_of(names) <= len(names) + report["packs_repacked"] + 1
    made, q = recorder.meters[-1].snapshot(), dry.json()["requests"]
    assert (q["get"], q["list"]) == (made.get, made.list)
    check = run_cli("check", "--repo", url, "--read-data", "--json")
    assert check.code == 0, check.out


def test_check_reads_each_tree_pack_once_for_all_snapshots(backed_up, run_cli, recorder):
    url, _ = backed_up
    names, _ = tree_packs(url)
    res = run_cli("check", "--repo", url, "--json")
    assert res.code == 0, res.out
    # each pack's header once, and its trees once, however many snapshots share them
    assert recorder.reads_of(names) <= 2 * len(names) + 1


@pytest.fixture
def local_backed_up(tmp_path: Path, run_cli) -> tuple[str, Path]:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    url = str(tmp_path / "repo")
    assert run_cli("init", "--repo", url, "--pack-size", SMALL_PACKS).code == 0
    for day in range(2):
        many_directories(src, day)
        assert run_cli("backup", "--repo", url, src).code == 0
    return url, src


def test_a_damaged_tree_pack_stops_a_prune_with_the_tree_named(local_backed_up, run_cli):
    url, _ = local_backed_up
    names, _ = tree_packs(url)
    victim = Path(url) / sorted(names)[0]
    flip_bit(victim, 100, bit=2)  # inside the first tree blob
    before = sorted(p.name for p in Path(url).rglob("*"))
    res = run_cli("prune", "--repo", url)
    assert res.code == 1
    assert (
        f"{sorted(names)[0]} (blob " in res.err
        and "failed authentication (damaged or tampered); nothing was deleted: run `cairn "
        "check` and `cairn repair`"
        in res.err
    ), res.err
    assert sorted(p.name for p in Path(url).rglob("*")) == before
    check = run_cli("check", "--repo", url, "--json")
    assert check.code == 1
    found = [f for f in check.json()["findings"] if "cannot be read" in f["message"]]
    assert found and all("failed authentication" in f["message"] for f in found), found


def test_a_truncated_tree_pack_stops_a_prune(local_backed_up, run_cli):
    url, _ = local_backed_up
    names, _ = tree_packs(url)
    victim = Path(url) / sorted(names)[-1]
    victim.write_bytes(victim.read_bytes()[:200])
    res = run_cli("prune", "--repo", url)
    assert res.code == 1 and "nothing was deleted" in res.err, res.err
    assert "pack is truncated" in res.err, res.err
    out = json.loads(run_cli("check", "--repo", url, "--json").out)
    assert not out["ok"]


def test_the_pack_cache_gives_what_blob_reads_give_within_its_budget(local_backed_up):
    url, _ = local_backed_up
    repo = open_repo(url)
    records = {r.info.id: r for _, recs in repo.read_index_objects() for r in recs}
    packs = {p for p, r in records.items() if r.info.blob_type == TREE_BLOB}
    trees = [b for r in records.values() if r.info.id in packs for b in (x.id for x in r.blobs)]
    plain = [repo.load_blob(t, TREE_BLOB) for t in trees]

    def cache(**kw: object) -> PackCache:
        return PackCache(repo.reader, TREE_BLOB, records, **kw)  # type: ignore[arg-type]

    whole = cache()
    assert [whole.load(t) for t in trees] == plain and whole.requests == len(packs)
    assert [whole.load(t) for t in trees] == plain  # let go once taken: read alone again
    assert whole.requests == len(packs) + len(trees)
    kept = cache(keep=True)
    assert [kept.load(t) for t in trees * 2] == plain * 2 and kept.requests == len(packs)
    # no pack fits: every tree is read alone, as without the cache
    small = cache(budget=1000)
    assert [small.load(t) for t in trees] == plain and small.requests == len(trees)
    assert small.bytes_read == sum(repo.index.get(t).length for t in trees)  # type: ignore[union-attr]
    # the budget bounds what is held: the first pack fits, the others are read blob by blob
    first = min(packs, key=lambda p: sum(b.length for b in records[p].blobs))
    one = cache(budget=sum(b.length for b in records[first].blobs))
    in_first = [b.id for b in records[first].blobs]
    assert [one.load(t) for t in in_first] == [repo.load_blob(t, TREE_BLOB) for t in in_first]
    assert one.requests == 1
    # a data blob asked for as a tree, or a blob the index lacks: the errors of a blob read
    data_blob = next(b.id for r in records.values() if r.info.id not in packs for b in r.blobs)
    with pytest.raises(IntegrityError, match="is a data blob, expected tree"):
        whole.load(data_blob)
    with pytest.raises(NotFoundError, match="is not in the index"):
        whole.load(b"\0" * 32)
