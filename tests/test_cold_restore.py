"""Restoring from GLACIER and DEEP_ARCHIVE, on the real SeaweedFS server with archived objects
simulated at the boto3 transport (tests/archive_sim.py: SeaweedFS implements neither archived
reads nor RestoreObject). cairn requests copies of exactly the packs a restore reads, exits 75
until they are readable, then restores; --wait waits instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cairn.app import restore as app_restore
from cairn.app.context import StoreOptions, wrap_backend
from cairn.core.errors import EXIT_PENDING, ObjectArchived
from cairn.model.node import FILE
from cairn.ops import thaw
from cairn.ops.snapshots import find_node, load_snapshots, walk
from cairn.repo import layout
from cairn.repo.repository import Repository
from cairn.storage.archive import ARCHIVED, RESTORED, RESTORING
from cairn.storage.s3 import S3Location, S3Storage
from tests.archive_sim import ArchiveSimulator
from tests.conftest import PASSWORD
from tests.faults import FaultPlan
from tests.s3server import BUCKET
from tests.verify import restored_diff

MIB = 1 << 20


@pytest.fixture
def archive(monkeypatch, s3_env):  # type: ignore[no-untyped-def]
    sim = ArchiveSimulator(BUCKET, delay=3600.0)
    original = S3Storage._make_client

    def client(self):  # type: ignore[no-untyped-def]
        c = original(self)
        sim.attach(c)
        return c

    monkeypatch.setattr(S3Storage, "_make_client", client)
    for tier in thaw.POLL_SECONDS:
        monkeypatch.setitem(thaw.POLL_SECONDS, tier, 0.05)
    return sim


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


def test_the_s3_backend_maps_archived_reads_and_restore_states(tmp_path, s3_url, archive):
    store = S3Storage(S3Location.parse(s3_url))
    store.write("data/aa/cold", b"x" * 1000, metadata=False)  # no class: STANDARD
    cold = S3Storage(S3Location.parse(s3_url))
    cold.options = type(cold.options)(storage_class="GLACIER")
    cold.write("data/bb/cold", b"y" * 1000, metadata=False)
    assert store.read("data/aa/cold") == b"x" * 1000
    with pytest.raises(ObjectArchived, match="data/bb/cold: archived"):
        store.read("data/bb/cold", 10, 20)
    classes = {i.name: i.storage_class for i in store.list_with_class("data/")}
    assert classes == {"data/aa/cold": "STANDARD", "data/bb/cold": "GLACIER"}
    assert store.restore_status("data/bb/cold") == ARCHIVED
    store.request_restore("data/bb/cold", 1, "Standard")
    store.request_restore("data/bb/cold", 1, "Standard")  # in progress: not an error
    assert store.restore_status("data/bb/cold") == RESTORING
    archive.delay = 0.0
    assert store.restore_status("data/bb/cold") == RESTORED
    assert store.read("data/bb/cold", 10, 20) == b"y" * 20


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


def test_cold_restore_survives_transient_faults(tmp_path, s3_url, archive, run_cli, monkeypatch):
    src = make_src(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "GLACIER").code == 0
    ops = frozenset({"ListObjectsV2", "HeadObject", "RestoreObject"})
    plan = FaultPlan(unavailable=0.3, seed=7, operations=ops)
    simulated = S3Storage._make_client

    def faulty(self):  # type: ignore[no-untyped-def]
        c = simulated(self)
        plan.attach(c)
        return c

    monkeypatch.setattr(S3Storage, "_make_client", faulty)
    monkeypatch.setattr("cairn.storage.retry.random.uniform", lambda a, b: 0.0)
    out = tmp_path / "out"
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
