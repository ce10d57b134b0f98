"""prune, check and repair: space really freed, nothing a snapshot needs ever lost, damage found
and named, and all of it safe against kill -9 and against a backup running at the same time.
On the local backend and on the real SeaweedFS S3 server."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.repo.locks import HeldLock, Locks, new_lock
from cairn.repo.repository import Repository
from tests.conftest import PASSWORD
from tests.treecmp import describe, diff
from tests.verify import restored_diff, verify_repository

MIB = 1 << 20


def open_repo(url: str) -> Repository:
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    return Repository.open(storage, PASSWORD.encode())


def snapshot_ids(run_cli, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    res = run_cli("snapshots", "--repo", url, "--json")
    assert res.code == 0, res.err
    return [s["id"] for s in res.json()]


def forget_snapshot(url: str, snap_id: str) -> None:
    open_repo(url).storage.delete(f"snapshots/{snap_id}")


def stored_bytes(url: str) -> int:
    return sum(size for _, size in open_repo(url).storage.list("data/"))


def write_files(root: Path, names: list[str], size: int = 2 * MIB) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        (root / n).write_bytes(os.urandom(size))


def test_prune_frees_unused_packs_and_repacks(tmp_path, repo_url, run_cli):
    src = tmp_path / "src"
    write_files(src, [f"old{i}" for i in range(6)])
    assert run_cli("init", "--repo", repo_url, "--pack-size", "5M").code == 0
    assert run_cli("backup", "--repo", repo_url, src).code == 0
    first = snapshot_ids(run_cli, repo_url)[0]
    for i in range(5):
        (src / f"old{i}").unlink()
    write_files(src, ["new0", "new1"])
    assert run_cli("backup", "--repo", repo_url, src).code == 0
    before = stored_bytes(repo_url)
    dry = run_cli("prune", "--repo", repo_url, "--json", "--dry-run")
    assert dry.code == 0
    # nothing is unused while the first snapshot exists
    assert dry.json()["packs_deleted"] == 0 and dry.json()["packs_repacked"] == 0
    forget_snapshot(repo_url, first)
    plan = run_cli("prune", "--repo", repo_url, "--json", "--dry-run", "--max-unused", "10%").json()
    assert plan["dry_run"] and plan["bytes_freed"] >= 9 * MIB
    assert plan["requests"]["delete"] >= plan["packs_deleted"] + plan["packs_repacked"]
    assert stored_bytes(repo_url) == before  # a dry run deletes nothing
    res = run_cli("prune", "--repo", repo_url, "--json", "--max-unused", "10%")
    assert res.code == 0, res.err
    report = res.json()
    assert report["postponed"] is None
    assert report["packs_deleted"] + report["packs_repacked"] >= 2
    after = stored_bytes(repo_url)
    assert before - after >= 9 * MIB  # five 2 MiB files' worth, minus pack overhead
    assert after < 9 * MIB
    out = tmp_path / "out"
    assert (
        run_cli("restore", "--repo", repo_url, f"latest:{src}", "--target", out, "--verify").code
        == 0
    )
    assert restored_diff(src, out, repo_url) == []
    check = run_cli("check", "--repo", repo_url, "--read-data", "--json")
    assert check.code == 0 and check.json()["findings"] == []
    # a second prune has nothing left to do
    again = run_cli("prune", "--repo", repo_url, "--json").json()
    assert again["packs_deleted"] == again["packs_repacked"] == again["orphan_packs"] == 0


def test_repack_threshold_is_respected(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    src = tmp_path / "src"
    write_files(src, ["a", "b", "c", "d"], size=MIB)
    assert run_cli("init", "--repo", url, "--pack-size", "5M").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    first = snapshot_ids(run_cli, url)[0]
    (src / "a").unlink()
    assert run_cli("backup", "--repo", url, src).code == 0
    forget_snapshot(url, first)
    # one pack, a quarter unused: kept at 50%, repacked at 10%
    keep = run_cli("prune", "--repo", url, "--json", "--dry-run", "--max-unused", "50%").json()
    assert keep["packs_repacked"] == 0 and keep["unused_bytes_kept"] >= MIB
    repack = run_cli("prune", "--repo", url, "--json", "--dry-run", "--max-unused", "10%").json()
    assert repack["packs_repacked"] >= 1 and repack["bytes_repack_read"] >= 4 * MIB
    capped = run_cli(
        "prune",
        "--repo",
        url,
        "--json",
        "--dry-run",
        "--max-unused",
        "10%",
        "--max-repack-size",
        "1M",
    ).json()
    assert capped["bytes_repack_read"] <= MIB < repack["bytes_repack_read"]


def test_a_prune_repacks_only_packs_with_unused_blobs_and_then_nothing(tmp_path, run_cli):
    """A pack's own bytes (magic, salt, header) are not unused: at --max-unused 0% a prune
    repacks the packs that hold a blob no snapshot keeps there, and the next prune has nothing
    to do."""
    url = str(tmp_path / "repo")
    src = tmp_path / "src"
    write_files(src, ["a", "b", "c", "d"], size=MIB)
    assert run_cli("init", "--repo", url, "--pack-size", "5M").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    idle = run_cli("prune", "--repo", url, "--json", "--dry-run", "--max-unused", "0%").json()
    assert (idle["packs_repacked"], idle["packs_deleted"], idle["bytes_freed"]) == (0, 0, 0)
    first = snapshot_ids(run_cli, url)[0]
    (src / "a").unlink()
    assert run_cli("backup", "--repo", url, src).code == 0
    forget_snapshot(url, first)
    once = run_cli("prune", "--repo", url, "--json", "--max-unused", "0%").json()
    assert once["packs_repacked"] == 1 and once["bytes_freed"] >= MIB
    again = run_cli("prune", "--repo", url, "--json", "--max-unused", "0%").json()
    assert (again["packs_repacked"], again["packs_deleted"], again["bytes_freed"]) == (0, 0, 0)
    assert run_cli("check", "--repo", url, "--read-data").code == 0


def test_check_finds_and_names_damage_and_repair_recovers(tmp_path, repo_url, run_cli):
    src = tmp_path / "src"
    write_files(src / "keep", ["k1", "k2"])
    write_files(src / "lose", ["l1"], size=3 * MIB)
    assert run_cli("init", "--repo", repo_url, "--pack-size", "2M").code == 0
    assert run_cli("backup", "--repo", repo_url, src).code == 0
    assert run_cli("check", "--repo", repo_url, "--read-data").code == 0
    repo = open_repo(repo_url)
    repo.load_index()
    lost = json.loads(run_cli("ls", "--repo", repo_url, "latest", f"{src}/lose/l1", "--json").out)
    entry = repo.index.get(bytes.fromhex(lost["content"][0]))
    pack = f"data/{entry.pack.id.hex()[:2]}/{entry.pack.id.hex()}"
    in_pack = {
        r.id for r in repo.read_pack_header(pack, repo.storage.stat(pack), entry.pack.salt)[2]
    }
    listing = [
        json.loads(line)
        for line in run_cli("ls", "--repo", repo_url, "latest", src, "--json").out.splitlines()
    ]
    expected = {
        e["path"]
        for e in listing
        if e["type"] == "file" and in_pack & {bytes.fromhex(c) for c in e.get("content", [])}
    }
    assert f"{src}/lose/l1" in expected
    repo.storage.delete(pack)
    res = run_cli("check", "--repo", repo_url, "--json")
    assert res.code == 1
    report = res.json()
    assert any(f["object"] == pack and "missing" in f["message"] for f in report["findings"])
    assert set(report["damaged"]) == {snapshot_ids(run_cli, repo_url)[0]}
    assert set(next(iter(report["damaged"].values()))) == expected
    assert run_cli("repair", "index", "--repo", repo_url).code == 0
    res = run_cli("repair", "snapshots", "--repo", repo_url, "--forget", "--json")
    assert res.code == 0
    assert any("lose/l1" in p for r in res.json()["repaired"] for p in r["removed"])
    check = run_cli("check", "--repo", repo_url, "--read-data")
    assert check.code == 0, check.out
    out = tmp_path / "out"
    assert (
        run_cli("restore", "--repo", repo_url, f"latest:{src}", "--target", out, "--verify").code
        == 0
    )
    restored = {f"{src}/{p.relative_to(out)}" for p in out.rglob("*") if p.is_file()}
    assert restored == {f"{src}/keep/k1", f"{src}/keep/k2", f"{src}/lose/l1"} - expected


def test_check_read_data_finds_a_flipped_bit_and_subsets(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    src = tmp_path / "src"
    write_files(src, [f"f{i}" for i in range(8)], size=MIB)
    assert run_cli("init", "--repo", url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    packs = sorted((Path(url) / "data").glob("*/*"))
    assert len(packs) >= 8
    # subsets n/m partition the packs
    read = [
        run_cli("check", "--repo", url, "--read-data-subset", f"{n}/3", "--json").json()[
            "packs_read"
        ]
        for n in (1, 2, 3)
    ]
    assert sum(read) == len(packs)
    assert run_cli("check", "--repo", url, "--read-data-subset", "50%", "--json").json()[
        "packs_read"
    ] == round(len(packs) / 2)
    victim = max(packs, key=lambda p: p.stat().st_size)  # a data pack, never the tree pack
    data = bytearray(victim.read_bytes())
    data[200] ^= 0x10
    victim.write_bytes(bytes(data))
    assert run_cli("check", "--repo", url).code == 0  # the structure is intact
    res = run_cli("check", "--repo", url, "--read-data", "--json")
    assert res.code == 1
    names = {f["object"] for f in res.json()["findings"]}
    assert any(victim.name in n for n in names)
    assert res.json()["damaged"]


def test_prune_refuses_when_blobs_are_missing(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    src = tmp_path / "src"
    write_files(src, ["a", "b"], size=MIB)
    assert run_cli("init", "--repo", url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", url, src).code == 0
    shutil.rmtree(Path(url) / "index")
    (Path(url) / "index").mkdir()
    before = sorted(p.name for p in (Path(url)).rglob("*"))
    res = run_cli("prune", "--repo", url)
    assert res.code == 1 and "nothing was deleted" in res.err
    assert sorted(p.name for p in (Path(url)).rglob("*")) == before
    assert run_cli("repair", "index", "--repo", url).code == 0
    assert run_cli("check", "--repo", url, "--read-data").code == 0


# ---------------------------------------------------------------------- processes


def cairn_env(tmp_path: Path, s3=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "CAIRN_PASSWORD": PASSWORD, "CAIRN_CACHE_DIR": str(tmp_path / "cache")}
    if s3 is not None:
        env.update(s3.env())
    return env


def cairn(
    env: dict[str, str], *args: str | Path, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run(
        [sys.executable, "-m", "cairn", *map(str, args)], env=env, capture_output=True, check=False
    )
    if check:
        assert res.returncode == 0, res.stderr.decode()
    return res


def prepare_prunable(tmp_path: Path, url: str, env: dict[str, str]) -> Path:
    src = tmp_path / "src"
    write_files(src, [f"f{i}" for i in range(12)], size=MIB)
    cairn(env, "init", "--repo", url, "--pack-size", "2M")
    cairn(env, "backup", "--repo", url, src)
    first = json.loads(cairn(env, "snapshots", "--repo", url, "--json").stdout)[0]["id"]
    for i in range(0, 12, 2):
        (src / f"f{i}").unlink()
    write_files(src, ["g0", "g1"], size=MIB)
    cairn(env, "backup", "--repo", url, src)
    forget_snapshot(url, first)
    return src


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_during_prune_leaves_a_valid_repository(tmp_path, repo_url, request, seed):
    s3 = request.getfixturevalue("s3_server") if repo_url.startswith("s3:") else None
    env = cairn_env(tmp_path, s3)
    src = prepare_prunable(tmp_path, repo_url, env)
    expected = describe(src)
    rng = random.Random(seed)
    # slow the prune down so the kill lands somewhere inside it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cairn",
            "prune",
            "--repo",
            repo_url,
            "--max-unused",
            "1%",
            "--limit-download",
            "4096",
            "--limit-upload",
            "4096",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(rng.uniform(0.5, 2.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    check = cairn(env, "check", "--repo", repo_url, "--read-data", "--json", check=False)
    assert check.returncode == 0, check.stdout
    assert all(f["severity"] == "warning" for f in json.loads(check.stdout)["findings"])
    out = tmp_path / "out"
    cairn(env, "restore", "--repo", repo_url, f"latest:{src}", "--target", out, "--verify")
    assert diff(expected, describe(out)) == []
    # the killed prune's lock is stale (its process is gone); a later prune finishes the job
    report = json.loads(
        cairn(env, "prune", "--repo", repo_url, "--max-unused", "1%", "--json").stdout
    )
    assert report["postponed"] is None
    final = json.loads(cairn(env, "check", "--repo", repo_url, "--read-data", "--json").stdout)
    assert final["ok"] and final["findings"] == []
    assert verify_repository(open_repo(repo_url))["snapshots"] == 1


@pytest.mark.parametrize("seed", [11, 12])
def test_kill_9_during_backup_then_check_and_prune(tmp_path, seed):
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    src = tmp_path / "src"
    write_files(src, [f"f{i}" for i in range(20)], size=MIB)
    cairn(env, "init", "--repo", url, "--pack-size", "1M")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn", "backup", "--repo", url, src, "--limit-upload", "8192"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(random.Random(seed).uniform(0.6, 2.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    check = cairn(env, "check", "--repo", url, "--read-data", "--json", check=False)
    assert check.returncode == 0, check.stdout
    report = json.loads(cairn(env, "prune", "--repo", url, "--json").stdout)
    assert report["postponed"] is None
    cairn(env, "backup", "--repo", url, src)
    final = json.loads(cairn(env, "check", "--repo", url, "--read-data", "--json").stdout)
    assert final["ok"] and final["findings"] == []


@pytest.mark.parametrize("delay", [0.0, 0.4, 1.0, 2.0])
def test_prune_during_a_concurrent_backup_never_loses_a_reused_blob(
    tmp_path, repo_url, request, delay
):
    """A second process backs up data whose blobs the prune considers unused (their snapshot
    was forgotten), while the prune runs. Whatever the interleaving, the new snapshot restores."""
    s3 = request.getfixturevalue("s3_server") if repo_url.startswith("s3:") else None
    env = cairn_env(tmp_path, s3)
    env_b = {**env, "CAIRN_CACHE_DIR": str(tmp_path / "cache-b")}  # another host, in effect
    src = tmp_path / "src"
    write_files(src, [f"f{i}" for i in range(10)], size=MIB)
    cairn(env, "init", "--repo", repo_url, "--pack-size", "2M")
    cairn(env, "backup", "--repo", repo_url, src)
    forget_snapshot(
        repo_url, json.loads(cairn(env, "snapshots", "--repo", repo_url, "--json").stdout)[0]["id"]
    )
    write_files(src, ["big"], size=6 * MIB)  # new data keeps the backup busy for a while
    expected = describe(src)
    backup = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cairn",
            "backup",
            "--repo",
            repo_url,
            src,
            "--limit-upload",
            "3072",
            "--host",
            "other",
        ],
        env=env_b,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(delay)
    prune = cairn(env, "prune", "--repo", repo_url, "--max-unused", "1%", "--json", check=False)
    _out, err = backup.communicate(timeout=120)
    assert backup.returncode == 0, err.decode()
    assert prune.returncode == 0, prune.stderr.decode()
    target = tmp_path / "out"
    cairn(env, "restore", "--repo", repo_url, f"latest:{src}", "--target", target, "--verify")
    assert diff(expected, describe(target)) == []
    check = json.loads(
        cairn(env, "check", "--repo", repo_url, "--read-data", "--json", check=False).stdout
    )
    assert check["ok"], check
    # once the backup is done, a prune completes and the snapshot still restores
    report = json.loads(cairn(env, "prune", "--repo", repo_url, "--json").stdout)
    assert report["postponed"] is None
    shutil.rmtree(target)
    cairn(env, "restore", "--repo", repo_url, f"latest:{src}", "--target", target, "--verify")


def test_backup_never_reuses_packs_a_running_prune_condemned(tmp_path, repo_url, run_cli):
    """The backup side of the protocol, made deterministic: a fresh prune lock condemns every
    pack; a backup of the same data must store it again, so the packs can go."""
    src = tmp_path / "src"
    write_files(src, ["a", "b", "c"], size=MIB)
    assert run_cli("init", "--repo", repo_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", repo_url, src).code == 0
    repo = open_repo(repo_url)
    repo.load_index()
    condemned = [p.id for p in repo.index.packs]
    with HeldLock(Locks(repo), new_lock("prune", condemned)):
        res = run_cli("backup", "--repo", repo_url, src, "--json", "--host", "elsewhere")
        assert res.code == 0, res.err
        assert res.json()["summary"]["bytes_added"] >= 3 * MIB  # stored again, not reused
        # what the prune would now do: delete the condemned packs
        for pack_id in condemned:
            repo.storage.delete(f"data/{pack_id.hex()[:2]}/{pack_id.hex()}")
    assert run_cli("repair", "index", "--repo", repo_url).code == 0
    out = tmp_path / "out"
    res = run_cli(
        "restore",
        "--repo",
        repo_url,
        f"latest:{src}",
        "--target",
        out,
        "--verify",
        "--host",
        "elsewhere",
    )
    assert res.code == 0, res.err
    assert restored_diff(src, out, repo_url) == []


def test_prune_refuses_while_another_prune_runs(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    assert run_cli("init", "--repo", url).code == 0
    repo = open_repo(url)
    with HeldLock(Locks(repo), new_lock("prune")):
        res = run_cli("prune", "--repo", url)
        assert res.code == 1 and "another prune lock" in res.err
    assert run_cli("prune", "--repo", url).code == 0
