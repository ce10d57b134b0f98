"""cairn on a real S3-compatible server (SeaweedFS started by the tests): full CLI round trips,
storage classes, request accounting, clear errors, and faults injected at the transport."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import AbstractContextManager

import pytest

from cairn.app.context import StackHooks, StoreOptions, stack_hooks, wrap_backend
from cairn.app.defaults import defaults_for
from cairn.repo.config import DEFAULT_PACK_SIZE
from cairn.repo.repository import Repository
from cairn.storage.base import Storage
from cairn.storage.faulty import FaultyStorage
from cairn.storage.retry import RetryPolicy
from cairn.storage.s3 import SMALL_PUT, S3Location, S3Storage
from tests.conftest import PASSWORD
from tests.faults import FaultPlan, on_s3_client
from tests.treecmp import describe, diff, read_like_any_program
from tests.verify import restored_diff, verify_repository

MIB = 1 << 20


def make_tree(root, size_mib: int = 6):  # type: ignore[no-untyped-def]
    (root / "docs").mkdir(parents=True)
    for i in range(30):
        (root / "docs" / f"note{i}.txt").write_text(f"note {i}\n" * (i * 50 + 1))
    (root / "media").mkdir()
    (root / "media" / "video.bin").write_bytes(os.urandom(size_mib * MIB))
    os.symlink("docs/note1.txt", root / "link")
    return root


def with_faults(plan: FaultPlan, retry: RetryPolicy) -> AbstractContextManager[StackHooks]:
    """Every S3 client the commands run in the block create gets the plan's hook, and their
    stores retry by ``retry`` (with the attempts --retries says)."""
    return stack_hooks(StackHooks(wrappers=(on_s3_client(plan.attach),), retry=retry))


# waits a twentieth of the usual ones, and none at all
SHORT_WAITS = RetryPolicy(base_delay=0.25 / 20, max_delay=30.0 / 20, jitter=False)
NO_WAITS = RetryPolicy(base_delay=0.0)


def open_repo(url: str) -> Repository:
    storage, _ = wrap_backend(S3Storage(S3Location.parse(url)), StoreOptions())
    return Repository.open(storage, PASSWORD.encode())


def test_cli_round_trip_on_s3(tmp_path, s3_url, run_cli):
    src = make_tree(tmp_path / "src")
    before = describe(src)
    assert run_cli("init", "--repo", s3_url, "--pack-size", "2M").code == 0
    first = run_cli("backup", "--repo", s3_url, src, "--json", "--storage-class", "STANDARD_IA")
    assert first.code == 0, first.err
    summary = first.json()["summary"]
    req = summary["requests"]
    assert req["put"] >= 4 and req["bytes_up"] >= 6 * MIB
    # packs, one index object and the backup's lock (the snapshot is written after the count)
    assert summary["packs_written"] == req["put"] - 2
    second = run_cli("backup", "--repo", s3_url, src, "--json")
    assert second.code == 0
    s2 = second.json()["summary"]
    assert s2["files_unchanged"] == 31 and s2["bytes_read"] == 0
    assert s2["requests"]["bytes_up"] < 64 * 1024
    res = run_cli(
        "restore", "--repo", s3_url, f"latest:{src}", "--target", tmp_path / "out", "--verify"
    )
    assert res.code == 0, res.err
    assert diff(before, describe(tmp_path / "out")) == []
    assert verify_repository(open_repo(s3_url))["snapshots"] == 2


def test_data_packs_use_the_storage_class_and_listing_never_reads_them(
    tmp_path, s3_url, s3_env, run_cli
):
    src = make_tree(tmp_path / "src", size_mib=3)
    assert run_cli("init", "--repo", s3_url).code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "GLACIER_IR").code == 0
    loc = S3Location.parse(s3_url)
    client = s3_env.client()
    classes = {}
    for obj in client.list_objects_v2(Bucket=loc.bucket, Prefix=loc.prefix)["Contents"]:
        head = client.head_object(Bucket=loc.bucket, Key=obj["Key"])
        classes[obj["Key"][len(loc.prefix) :]] = head.get("StorageClass", "STANDARD")
    repo = open_repo(s3_url)
    repo.load_index()
    data_packs = {
        f"data/{p.id.hex()[:2]}/{p.id.hex()}" for p in repo.index.packs if p.blob_type == 0
    }
    assert data_packs and all(classes[n] == "GLACIER_IR" for n in data_packs)
    assert all(c == "STANDARD" for n, c in classes.items() if n not in data_packs)

    spies: list[FaultyStorage] = []

    def spy(backend: Storage) -> Storage:
        spies.append(FaultyStorage(backend))
        return spies[-1]

    with stack_hooks(StackHooks(wrappers=(spy,))):
        for args in (
            ["snapshots"],
            ["ls", "latest", "-l"],
            ["ls", "latest", str(src / "docs")],
            ["stats", "latest"],
        ):
            assert run_cli(*args, "--repo", s3_url).code == 0
    reads = {c.name for f in spies for c in f.log if c.op in ("read", "read_into")}
    assert len(spies) == 4 and reads and not (reads & data_packs)


def test_small_objects_go_up_without_waiting_for_100_continue(s3_url):
    """botocore asks for ``Expect: 100-continue`` on every PUT, a round trip before the body:
    a lock, snapshot or index object, or a first backup's small first pack (under SMALL_PUT)
    is sent at once, a full pack still waits."""
    store = S3Storage(S3Location.parse(s3_url))
    expects: dict[str, bool] = {}

    def seen(request, **kwargs):  # type: ignore[no-untyped-def]
        expects[request.url.rsplit("/", 1)[-1]] = "Expect" in request.headers

    store.client.meta.events.register("before-send.s3.PutObject", seen)
    store.write("locks/small", b"x" * 300)
    store.write("data/00/large", os.urandom(SMALL_PUT + 1), metadata=False)
    assert expects == {"small": False, "large": True}
    assert store.read("locks/small") == b"x" * 300
    # the first pack of a first backup goes at once too (the link waits for it)
    first = DEFAULT_PACK_SIZE // (defaults_for(s3_url).first_pack_divisor or 1)
    assert first < SMALL_PUT < DEFAULT_PACK_SIZE


def test_wrong_credentials_missing_bucket_unreachable(tmp_path, s3_url, s3_env, cairn_proc):
    assert cairn_proc("init", "--repo", s3_url, env=s3_env.env()).code == 0
    bad = cairn_proc(
        "snapshots", "--repo", s3_url, env={**s3_env.env(), "AWS_SECRET_ACCESS_KEY": "wrong"}
    )
    assert bad.code == 1 and "credentials" in bad.err and len(bad.err.strip().splitlines()) == 1
    assert "Traceback" not in bad.err
    missing = cairn_proc(
        "snapshots", "--repo", s3_env.url("x", bucket="no-such-bucket"), env=s3_env.env()
    )
    assert missing.code == 1 and "bucket" in missing.err and "Traceback" not in missing.err
    t0 = time.monotonic()
    gone = cairn_proc(
        "snapshots", "--repo", "s3:http://127.0.0.1:9/bucket/x", "--retries", "2", env=s3_env.env()
    )
    assert gone.code == 1 and "cannot reach" in gone.err and len(gone.err.strip().splitlines()) == 1
    assert time.monotonic() - t0 < 30
    # the repository is untouched by all of that
    assert verify_repository(open_repo(s3_url))["snapshots"] == 0


@pytest.mark.parametrize(
    "plan",
    [
        FaultPlan(drop=0.15, seed=3),
        FaultPlan(unavailable=0.2, seed=4),
        FaultPlan(slow=0.2, delay=0.3, seed=5),
        FaultPlan(drop=0.1, unavailable=0.1, slow=0.1, delay=0.2, seed=6),
    ],
    ids=["dropped-connections", "503", "slow", "mixed"],
)
def test_backup_survives_transient_faults(tmp_path, s3_url, run_cli, plan):
    src = make_tree(tmp_path / "src", size_mib=5)
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    out = tmp_path / "out"
    with with_faults(plan, SHORT_WAITS):
        res = run_cli("backup", "--repo", s3_url, src, "--retries", "10")
        assert res.code == 0, res.err
        assert sum(plan.counts.values()) > 0
        # While a backup and a restore run (slowly here), any program may list and read the
        # source: on a relatime mount that moves the atimes of its fresh directories and files.
        # Done here every time, it makes a comparison with the source's atimes of now fail
        # every time.
        read_like_any_program(src)
        restored = run_cli(
            "restore", "--repo", s3_url, f"latest:{src}", "--target", out, "--verify"
        )
        assert restored.code == 0, restored.err
    assert restored_diff(src, out, s3_url) == []  # atimes: as the backup recorded them
    assert verify_repository(open_repo(s3_url))["snapshots"] == 1


def test_backup_fails_cleanly_when_the_store_keeps_failing(tmp_path, s3_url, run_cli):
    src = make_tree(tmp_path / "src", size_mib=3)
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    (src / "media" / "new.bin").write_bytes(os.urandom(3 * MIB))
    plan = FaultPlan(unavailable=1.0, operations=frozenset({"PutObject"}))
    with with_faults(plan, NO_WAITS):
        res = run_cli("backup", "--repo", s3_url, src, "--retries", "3")
    assert res.code == 1
    assert "gave up after 3 attempts" in res.err and "Traceback" not in res.err
    report = verify_repository(open_repo(s3_url))
    assert report["snapshots"] == 1
    # and once the store is healthy again, the next backup completes
    assert run_cli("backup", "--repo", s3_url, src).code == 0


def test_killed_backup_resumes_without_uploading_again(tmp_path, s3_url, s3_env):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i}.bin").write_bytes(os.urandom(5 * MIB))
    env = {
        **os.environ,
        **s3_env.env(),
        "CAIRN_PASSWORD": PASSWORD,
        "CAIRN_CACHE_DIR": str(tmp_path / "cache"),
    }
    cmd = [sys.executable, "-m", "cairn"]
    assert (
        subprocess.run(
            [*cmd, "init", "--repo", s3_url, "--pack-size", "2M"], env=env, check=False
        ).returncode
        == 0
    )
    proc = subprocess.Popen(
        [*cmd, "backup", "--repo", s3_url, src, "--limit-upload", "8192"], env=env
    )
    loc = S3Location.parse(s3_url)
    client = s3_env.client()
    deadline = time.monotonic() + 60
    uploaded = 0
    while time.monotonic() < deadline:
        objs = client.list_objects_v2(Bucket=loc.bucket, Prefix=loc.prefix + "data/").get(
            "Contents", []
        )
        uploaded = sum(o["Size"] for o in objs)
        if uploaded >= 20 * MIB:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert uploaded >= 20 * MIB
    res = subprocess.run(
        [*cmd, "backup", "--repo", s3_url, src, "--json"], env=env, capture_output=True, check=False
    )
    assert res.returncode == 0, res.stderr

    up = json.loads(res.stdout)["summary"]["requests"]["bytes_up"]
    assert up <= 60 * MIB - uploaded + 4 * MIB, (up, uploaded)
    assert verify_repository(open_repo(s3_url))["snapshots"] == 1
