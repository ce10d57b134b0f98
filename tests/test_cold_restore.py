"""Restoring from GLACIER and DEEP_ARCHIVE, on the real SeaweedFS server with archived objects
simulated at the boto3 transport (tests/archive_sim.py: SeaweedFS implements neither archived
reads nor RestoreObject). cairn requests copies of exactly the packs a restore reads, exits 75
until they are readable, then restores; --wait waits instead. The thaw logic itself is also
tested on the in-memory store with storage classes, with faults injected. (The S3 backend's
archive calls are in the storage contract suite.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cairn.app import restore as app_restore
from cairn.app.context import StackHooks, StoreOptions, stack_hooks, wrap_backend
from cairn.core.errors import EXIT_PENDING, UsageError
from cairn.model.node import FILE
from cairn.ops import thaw
from cairn.ops.cost.prices import load_prices
from cairn.ops.snapshots import find_node, load_snapshots, walk
from cairn.repo import layout
from cairn.repo.repository import Repository
from cairn.storage.faulty import FaultyStorage
from cairn.storage.memory import MemoryStorage
from cairn.storage.metered import MeteredStorage
from cairn.storage.retry import RetryingStorage, RetryPolicy
from cairn.storage.s3 import S3Location, S3Storage
from tests.archive_sim import ArchiveSimulator
from tests.conftest import PASSWORD
from tests.faults import FaultPlan, on_s3_client
from tests.s3server import BUCKET
from tests.verify import restored_diff

MIB = 1 << 20


@pytest.fixture
def archive(monkeypatch, s3_env):  # type: ignore[no-untyped-def]
    """Archived objects simulated at the transport of every S3 store the commands open."""
    sim = ArchiveSimulator(BUCKET, delay=3600.0)
    for tier in thaw.POLL_SECONDS:
        monkeypatch.setitem(thaw.POLL_SECONDS, tier, 0.05)
    with stack_hooks(StackHooks(wrappers=(on_s3_client(sim.attach),))):
        yield sim


def make_src(root: Path) -> Path:
    for part in ("a", "b"):
        (root / part).mkdir(parents=True)
        (root / part / "big.bin").write_bytes(os.urandom(3 * MIB))
        (root / part / "note.txt").write_text(f"{part}\n" * 500)
    return root


def open_repo(url: str) -> Repository:
    storage, _ = wrap_backend(S3Storage(S3Location.parse(url)), StoreOptions())
    repo = Repository.open(storage, PASSWORD.encode())
    repo.load_index()
    return repo


def packs_below(url: str, path: str) -> set[str]:
    """The packs that hold the file data below ``path`` in the latest snapshot."""
    repo = open_repo(url)
    snap = load_snapshots(repo)[-1]
    node = find_node(repo, snap, path)
    assert node.subtree is not None
    names = set()
    for _p, n in walk(repo, node.subtree):
        if n.type == FILE:
            for blob_id in n.content:
                entry = repo.index.get(blob_id)
                assert entry is not None
                names.add(layout.pack_name(entry.pack.id.hex()))
    return names


def keys(url: str, names: set[str]) -> set[str]:
    prefix = S3Location.parse(url).prefix
    return {prefix + n for n in names}


def test_restore_requests_exactly_its_packs_then_runs_again(tmp_path, s3_url, archive, run_cli):
    src = make_src(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "GLACIER").code == 0
    need_a = keys(s3_url, packs_below(s3_url, f"{src}/a"))
    need_b = keys(s3_url, packs_below(s3_url, f"{src}/b"))
    assert need_a and need_b - need_a
    assert need_a | need_b == set(archive.archived)  # only data packs are archived

    out = tmp_path / "out"
    first = run_cli("restore", "--repo", s3_url, f"latest:{src}/a", "--target", out)
    assert first.code == EXIT_PENDING, first.err
    assert sorted(archive.restore_requests) == sorted(need_a)  # each once, nothing else
    assert f"restore requested now for {len(need_a)}, in progress for 0" in first.out
    assert "expected wait: up to 5h00m00s" in first.out
    assert "run the same command again" in first.out and "exit status 75" in first.out
    assert archive.blocked_reads == []  # nothing was read before the copies exist
    assert not any(out.rglob("big.bin"))

    second = run_cli("restore", "--repo", s3_url, f"latest:{src}/a", "--target", out, "--json")
    assert second.code == EXIT_PENDING
    t = second.json()["thaw"]
    n = len(need_a)
    assert (t["packs"], t["restoring"], t["requested"], t["pending"]) == (n, n, 0, n)
    assert t["cost"] == 0  # this run requested nothing
    assert len(archive.restore_requests) == n

    archive.delay = 0.0  # the store has made the copies
    third = run_cli("restore", "--repo", s3_url, f"latest:{src}/a", "--target", out, "--json")
    assert third.code == 0, third.err
    assert third.json()["thaw"]["ready"] == n and third.json()["files"] == 2
    assert restored_diff(src / "a", out, s3_url) == []
    assert archive.blocked_reads == [] and len(archive.restore_requests) == n


def test_restore_wait_polls_until_readable(tmp_path, s3_url, archive, run_cli):
    src = make_src(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "DEEP_ARCHIVE").code == 0
    archive.delay = 0.4
    out = tmp_path / "out"
    res = run_cli(
        "restore", "--repo", s3_url, f"latest:{src}", "--target", out, "--wait",
        "--restore-tier", "Bulk", "--restore-days", "2",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "DEEP_ARCHIVE" in res.out and "Bulk tier, copies readable for 2 days" in res.out
    assert "expected wait: up to 48h00m00s" in res.out
    assert "waiting for the restored copies" in res.out
    assert "the restored copies are readable: restoring" in res.out
    assert sorted(archive.restore_requests) == sorted(archive.archived)
    assert archive.blocked_reads == []
    assert restored_diff(src, out, s3_url) == []


def test_a_tier_the_class_does_not_offer_is_refused_before_any_request(
    tmp_path, s3_url, archive, run_cli
):
    src = make_src(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "DEEP_ARCHIVE").code == 0
    res = run_cli(
        "restore", "--repo", s3_url, "latest", "--target", tmp_path / "o",
        "--restore-tier", "Expedited",
    )  # fmt: skip
    assert res.code == 2
    assert (
        "DEEP_ARCHIVE cannot be restored with the Expedited tier (use Standard or Bulk)" in res.err
    )
    assert archive.restore_requests == []


def test_cost_of_a_full_restore_from_glacier(tmp_path, s3_url, archive, run_cli):
    src = make_src(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "GLACIER").code == 0
    doc = run_cli("cost", "--repo", s3_url, "--json").json()
    r = doc["restore"]
    glacier = next(c for c in r["by_class"] if c["class"] == "GLACIER")
    listed = S3Storage(S3Location.parse(s3_url)).list_with_class("data/")
    cold = [i.size for i in listed if i.storage_class == "GLACIER"]
    assert glacier["packs"] == len(archive.archived) == len(cold)
    assert glacier["pack_bytes"] == sum(cold)
    gib = glacier["pack_bytes"] / (1 << 30)
    fees = glacier["packs"] * 0.05 / 1000 + gib * 0.01 + gib * 0.023 * 7 / 30
    assert r["charges"]["retrieval"] == pytest.approx(fees)
    assert r["thaw_hours"] == 5 and r["hours"] > 5
    text = run_cli("cost", "--repo", s3_url, "--restore-tier", "Bulk").out
    assert (
        f"{glacier['packs']} packs" in text and "are in GLACIER: restored first (Bulk tier" in text
    )
    assert archive.restore_requests == []  # estimating requests nothing


def test_cold_restore_survives_transient_faults(tmp_path, s3_url, archive, run_cli):
    src = make_src(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "GLACIER").code == 0
    ops = frozenset({"ListObjectsV2", "HeadObject", "RestoreObject"})
    plan = FaultPlan(unavailable=0.3, seed=7, operations=ops)
    hooks = StackHooks(
        wrappers=(on_s3_client(archive.attach), on_s3_client(plan.attach)),
        retry=RetryPolicy(base_delay=0.0),
    )
    out = tmp_path / "out"
    with stack_hooks(hooks):
        first = run_cli("restore", "--repo", s3_url, f"latest:{src}", "--target", out)
        assert first.code == EXIT_PENDING, first.err
        assert sorted(set(archive.restore_requests)) == sorted(archive.archived)
        archive.delay = 0.0
        second = run_cli("restore", "--repo", s3_url, f"latest:{src}", "--target", out)
        assert second.code == 0, second.err
    assert plan.counts.get("503", 0) > 0
    assert restored_diff(src, out, s3_url) == []


def test_a_read_answering_archived_stops_the_restore_which_runs_again_once_thawed(
    tmp_path, s3_url, archive, run_cli, monkeypatch
):
    """Without --storage-class the restore streams; the first pack it reads is readable, a later
    one archived (backed up by another backup into GLACIER). The restore stops at that read,
    finds and requests exactly the archived packs it reads, and leaves no file of them behind;
    run again, it waits and restores everything."""
    src = make_src(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src / "a").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "GLACIER").code == 0
    cold = keys(s3_url, packs_below(s3_url, f"{src}/b"))
    assert cold == set(archive.archived)
    assert not keys(s3_url, packs_below(s3_url, f"{src}/a")) & cold

    out = tmp_path / "out"
    first = run_cli("restore", "--repo", s3_url, f"latest:{src}", "--target", out)
    assert first.code == EXIT_PENDING, first.err
    assert archive.blocked_reads  # the stream met them
    assert sorted(archive.restore_requests) == sorted(cold)  # each once, nothing else
    assert f"restore requested now for {len(cold)}, in progress for 0" in first.out
    assert "is archived: finding the archived packs this restore reads" in first.out
    assert not (out / "b" / "big.bin").exists() and not (out / "b" / "note.txt").exists()
    assert first.err == ""  # nothing reported as failed: the restore is pending

    waiting = app_restore.wait_for_thaw

    def copies_made(*args, **kwargs):  # type: ignore[no-untyped-def]
        archive.delay = 0.0  # the store makes the copies once the restore waits for them
        return waiting(*args, **kwargs)

    monkeypatch.setattr(app_restore, "wait_for_thaw", copies_made)
    second = run_cli("restore", "--repo", s3_url, f"latest:{src}", "--target", out, "--wait")
    assert second.code == 0, second.err
    assert f"restore requested now for 0, in progress for {len(cold)}" in second.out
    assert "the restored copies are readable: restoring" in second.out
    assert sorted(set(archive.restore_requests)) == sorted(cold)
    assert restored_diff(src, out, s3_url) == []


# ------------------------------------------------------------------ the thaw on a store in memory
def cold_store() -> tuple[MemoryStorage, FaultyStorage, MeteredStorage, RetryingStorage]:
    """Three GLACIER data packs and a STANDARD tree pack in memory, behind a fault injector, a
    meter and a retry wrapper that does not wait."""
    memory = MemoryStorage(classes=True, data_class="GLACIER")
    for name in ("data/aa/1", "data/bb/2", "data/cc/3"):
        memory.write(name, b"x" * 1000, metadata=False)
    memory.write("data/dd/4", b"tree")
    faulty = FaultyStorage(memory)
    meter = MeteredStorage(faulty)
    return memory, faulty, meter, RetryingStorage(meter, RetryPolicy(sleep=lambda s: None))


def test_thaw_requests_each_archived_pack_it_needs_once():
    memory, faulty, meter, store = cold_store()
    faulty.fail("list_with_class", times=1, after=1)  # a listing lost part-way
    faulty.fail("request_restore", "data/bb/", times=2)
    assert store.archive is not None
    needed = {"data/aa/1", "data/bb/2", "data/dd/4"}
    options = thaw.ThawOptions(days=2, tier="Bulk")
    report = thaw.request_thaw(store.archive, needed, options, load_prices()["aws"])
    assert (report.packs, report.bytes, report.requested, report.restoring) == (2, 2000, 2, 0)
    assert report.classes == {"GLACIER": 2} and report.cost > 0 and report.hours == 12
    assert memory.restore_requests == [("data/aa/1", 2, "Bulk"), ("data/bb/2", 2, "Bulk")]
    assert report.waiting == ["data/aa/1", "data/bb/2"]
    u = meter.snapshot()  # what the store was asked, failed attempts included
    assert (u.list, u.head, u.restore, u.get) == (2, 2, 4, 0)

    again = thaw.request_thaw(store.archive, needed, options, load_prices()["aws"])
    assert (again.requested, again.restoring, again.ready, again.cost) == (0, 2, 0, 0)
    assert len(memory.restore_requests) == 2  # nothing asked for twice


def test_waiting_for_the_thaw_asks_again_for_a_copy_that_lapsed():
    memory, _, _, store = cold_store()
    options = thaw.ThawOptions(days=1, tier="Standard")
    assert store.archive is not None
    report = thaw.request_thaw(
        store.archive, {"data/aa/1", "data/bb/2"}, options, load_prices()["aws"]
    )
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:  # the first copy was made, and has lapsed already
            memory.finish_restores(["data/aa/1"])
            memory.expire_restores(["data/aa/1"])
        else:
            memory.finish_restores()

    thaw.wait_for_thaw(store.archive, report, options, poll=5.0, sleep=sleep)
    assert waits == [5.0, 5.0] and report.waiting == []
    assert [n for n, _, _ in memory.restore_requests] == ["data/aa/1", "data/bb/2", "data/aa/1"]
    assert store.read("data/aa/1") == b"x" * 1000


def test_a_tier_the_class_does_not_offer_is_refused_before_any_request_in_memory():
    memory, _, _, store = cold_store()
    memory.set_class("data/cc/3", "DEEP_ARCHIVE")
    assert store.archive is not None
    with pytest.raises(UsageError, match="DEEP_ARCHIVE cannot be restored with the Expedited"):
        thaw.request_thaw(
            store.archive,
            {"data/aa/1", "data/cc/3"},
            thaw.ThawOptions(tier="Expedited"),
            load_prices()["aws"],
        )
    assert memory.restore_requests == []
