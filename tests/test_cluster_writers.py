"""Six hosts back up into one repository on a SeaweedFS cluster (tests/s3cluster.py: a master,
three volume servers keeping every volume twice, a filer and the S3 gateway, each its own
process) while a seventh runs forget and prune in a loop; a volume server dies and comes back,
then the S3 gateway does.

Each host is a separate `cairn backup` process with its own --host and cache directory; their
trees overlap (files every host holds, byte for byte, and files of their own), and change every
round. Nothing may fail but what ran while the gateway was down, and that only with a clear
error (a non-zero exit, one last line naming the failure, no traceback): a command that had not
reached the store yet (it fails at once), or the one backup told to give up at its first
failure (--retries 1); the others outlast the gateway's few seconds away by retrying. The
repository is consistent right after, and a backup that failed succeeds when run again. At the
end `check --read-data` passes, every snapshot restores exactly as its source was, the data the
hosts share is stored once, and a last prune leaves nothing unused."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.repo.locks import Locks
from cairn.repo.repository import Repository
from tests.conftest import PASSWORD
from tests.treecmp import describe, diff

HOSTS = 6
ROUNDS = 4  # round 1 loses a volume server, round 2 the S3 gateway
MiB = 1 << 20
KiB = 1 << 10
GATEWAY_DOWN = 4.0  # seconds


@dataclass
class Run:
    args: tuple[str, ...]
    started: float
    ended: float
    code: int
    out: str
    err: str

    @property
    def what(self) -> str:
        return f"{' '.join(self.args[:1])} exit {self.code}: {self.err.strip()[-1500:]}"


@dataclass
class Record:
    runs: list[Run] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    outage: tuple[float, float] | None = None  # the gateway was down from, until (epoch s)

    def add(self, run: Run) -> Run:
        with self.lock:
            self.runs.append(run)
        return run

    def during_outage(self, run: Run) -> bool:
        return (
            self.outage is not None
            and run.started <= self.outage[1]
            and run.ended >= self.outage[0]
        )


def _env(base: Path, cluster, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        **os.environ,
        **cluster.env(),
        "CAIRN_PASSWORD": PASSWORD,
        "CAIRN_CACHE_DIR": str(base / f"cache-{name}"),
    }


def _cairn(env: dict[str, str], *args: str | Path, pids: set[int] | None = None) -> Run:
    """Runs ``cairn ARGS``; its PID is in ``pids`` while it runs."""
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if pids is not None:
        pids.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pids is not None:
            pids.discard(proc.pid)
    return Run(
        tuple(map(str, args)),
        started,
        time.time(),
        proc.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )


def _when_writing(repo: Repository, pids: set[int], hosts: list[threading.Thread]) -> None:
    """Returns once one of the processes ``pids`` holds a backup lock (it is writing), or once
    the backups ``hosts`` have all ended."""
    while any(t.is_alive() for t in hosts):
        if any(lock.kind == "backup" and lock.pid in pids for lock in Locks(repo).read_all()):
            return
        time.sleep(0.05)


def clear_failure(run: Run) -> bool:
    """Failed the way a user can act on: exit 1, no traceback, a last line that says what."""
    return run.code == 1 and "Traceback" not in run.err and bool(error_line(run))


def error_line(run: Run) -> str:
    """The error a failed command ended with: its last line on stderr (with --json, the
    ``error`` of the JSON object there)."""
    last = run.err.strip().splitlines()[-1] if run.err.strip() else ""
    if "--json" in run.args:
        try:
            return str(json.loads(last)["error"])
        except (ValueError, KeyError, TypeError):
            return ""
    return last.removeprefix("cairn: ") if last.startswith("cairn: ") else ""


def digest(tree: dict[bytes, tuple]) -> dict[bytes, tuple]:  # type: ignore[type-arg]
    """A tree description with each file's content as its SHA-256 (small to keep)."""
    return {
        path: (*e[:7], hashlib.sha256(e[7]).digest() if e[7] is not None else None, *e[8:])
        for path, e in tree.items()
    }


def _round_files(src: Path, host: int, rnd: int) -> None:
    """Round ``rnd`` of a host's tree: files every host holds (the same bytes on each: one
    from the start, one more each round) and files of its own (one more each round, one
    rewritten)."""
    shared, own = src / "shared", src / "own"
    shared.mkdir(exist_ok=True)
    own.mkdir(exist_ok=True)
    if rnd == 0:
        (shared / "base.bin").write_bytes(random.Random("base").randbytes(3 * MiB))
    (shared / f"round{rnd}.bin").write_bytes(random.Random(f"round{rnd}").randbytes(MiB))
    rng = random.Random(f"{host}/{rnd}")
    (own / f"r{rnd}.bin").write_bytes(rng.randbytes(rng.randrange(256 * KiB, 768 * KiB)))
    (own / "changing.bin").write_bytes(rng.randbytes(200 * KiB))


def _maintenance(url: str, env: dict[str, str], stop: threading.Event, record: Record) -> None:
    while not stop.is_set():
        record.add(
            _cairn(env, "forget", "--repo", url, "--keep-last", "2", "--group-by", "host", "--json")
        )
        record.add(_cairn(env, "prune", "--repo", url, "--max-unused", "10%", "--json"))


def _stored(cluster, prefix: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(bytes, objects) under ``prefix`` in the test bucket."""
    from tests.s3server import BUCKET

    total = count = 0
    for page in (
        cluster.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    ):
        for obj in page.get("Contents", []):
            total += obj["Size"]
            count += 1
    return total, count


@pytest.mark.slow
def test_six_hosts_back_up_into_a_cluster_while_its_servers_fail(
    tmp_path, s3_cluster, monkeypatch, run_cli
):
    cluster = s3_cluster
    url = cluster.url("hosts")
    admin = _env(tmp_path, cluster, "admin")
    init = _cairn(admin, "init", "--repo", url, "--pack-size", "512K")
    assert init.code == 0, init.err
    for k, v in cluster.env().items():
        monkeypatch.setenv(k, v)
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    repo = Repository.open(storage, PASSWORD.encode())  # to see the locks

    record = Record()
    # snapshot id -> (source, its description); failed backups: (host, run, source, description)
    saved: dict[str, tuple[Path, dict]] = {}  # type: ignore[type-arg]
    failed: list[tuple[str, Run, Path, dict]] = []  # type: ignore[type-arg]
    srcs = [tmp_path / f"src-{h}" for h in range(HOSTS)]
    for src in srcs:
        src.mkdir()
    envs = [_env(tmp_path, cluster, f"host{h}") for h in range(HOSTS)]
    probe_env = _env(tmp_path, cluster, "probe")
    running: set[int] = set()  # the backups' PIDs
    # in the gateway's round, the last host gives up at the first failure: it fails mid-way
    impatient: set[int] = set()

    def backup(h: int, expected: dict, options: tuple[str, ...] = ()) -> Run:  # type: ignore[type-arg]
        run = record.add(
            _cairn(
                envs[h],
                "backup",
                "--repo",
                url,
                srcs[h],
                "--host",
                f"host{h}",
                "--json",
                *options,
                pids=impatient if options else running,
            )
        )
        with record.lock:
            if run.code == 0:
                saved[json.loads(run.out)["id"]] = (srcs[h], expected)
            else:
                failed.append((f"host{h}", run, srcs[h], expected))
        return run

    stop = threading.Event()
    maintenance = threading.Thread(target=_maintenance, args=(url, admin, stop, record))
    maintenance.start()
    probes: list[Run] = []
    try:
        for rnd in range(ROUNDS):
            expected = []
            for h, src in enumerate(srcs):
                _round_files(src, h, rnd)
                expected.append(digest(describe(src, atime=False)))
            if rnd == 2:
                (srcs[-1] / "own" / "big.bin").write_bytes(os.urandom(8 * MiB))
                expected[-1] = digest(describe(srcs[-1], atime=False))
            hosts = [
                threading.Thread(
                    target=backup,
                    args=(
                        h,
                        expected[h],
                        ("--retries", "1") if rnd == 2 and h == HOSTS - 1 else (),
                    ),
                )
                for h in range(HOSTS)
            ]
            for t in hosts:
                t.start()
            if rnd == 1:  # a volume server dies while the backups write, and comes back
                _when_writing(repo, running, hosts)
                cluster.kill("volume2")
                for t in hosts:
                    t.join(300)
                cluster.restart("volume2")
            elif rnd == 2:  # the gateway dies while they write
                _when_writing(repo, impatient, hosts)
                down = time.time()
                cluster.kill("s3")
                # what starts meanwhile fails at once, clearly
                # (both at once, and the gateway stays away until they have ended)
                probing = [
                    threading.Thread(target=lambda a=a: probes.append(_cairn(*a)))
                    for a in (
                        (admin, "snapshots", "--repo", url, "--json"),
                        (probe_env, "backup", "--repo", url, srcs[0], "--host", "probe"),
                    )
                ]
                for t in probing:
                    t.start()
                for t in probing:
                    t.join(300)
                time.sleep(max(0.0, GATEWAY_DOWN - (time.time() - down)))
                cluster.restart("s3")
                record.outage = (down, time.time())
            for t in hosts:
                t.join(300)
            assert not any(t.is_alive() for t in hosts)
            if rnd == 2:
                # whatever failed left the repository consistent ...
                check = _cairn(admin, "check", "--repo", url, "--json")
                assert check.code == 0 and json.loads(check.out)["ok"], check.out + check.err
                # ... and a failed backup succeeds when run again
                for host, _, _, exp in list(failed):
                    again = backup(int(host.removeprefix("host")), exp)
                    assert again.code == 0, again.what
    finally:
        stop.set()
        maintenance.join(600)
    assert not maintenance.is_alive()

    assert len(probes) == 2
    for probe in probes:
        assert clear_failure(probe), probe.what
    unexpected = [r.what for r in record.runs if r.code != 0 and not record.during_outage(r)]
    assert unexpected == []
    unclear = [r.what for r in record.runs if r.code != 0 and not clear_failure(r)]
    assert unclear == []
    gave_up = [
        r.what
        for r in record.runs
        if r.code != 0 and "--retries" not in r.args and "nothing has answered" not in r.err
    ]
    assert gave_up == []  # the default retries outlast the gateway's restart
    # a quiet moment: the last forget and prune, then everything reads back
    forget = _cairn(admin, "forget", "--repo", url, "--keep-last", "2", "--group-by", "host")
    assert forget.code == 0, forget.err
    final = _cairn(admin, "prune", "--repo", url, "--max-unused", "0%", "--json")
    assert final.code == 0 and json.loads(final.out)["postponed"] is None, final.out + final.err
    check = _cairn(admin, "check", "--repo", url, "--read-data", "--json")
    report = json.loads(check.out)
    assert check.code == 0 and report["ok"] and report["findings"] == [], report
    after = json.loads(
        _cairn(admin, "prune", "--repo", url, "--dry-run", "--max-unused", "0%", "--json").out
    )
    assert (
        after["packs_deleted"],
        after["orphan_packs"],
        after["packs_repacked"],
        after["bytes_freed"],
    ) == (0, 0, 0, 0), after

    # (read in this process: quicker)
    snapshots = run_cli("snapshots", "--repo", url, "--json").json()
    assert sorted(s["host"] for s in snapshots) == sorted(
        f"host{h}" for h in range(HOSTS) for _ in range(2)
    )
    unique: dict[bytes, int] = {}
    for snap in snapshots:
        if snap["id"] in saved:
            src, expected = saved[snap["id"]]
        else:  # saved by a backup that then reported a failure
            when = datetime.fromisoformat(snap["time"]).timestamp()
            runs = [
                f for f in failed if f[0] == snap["host"] and f[1].started <= when <= f[1].ended
            ]
            assert len(runs) == 1, (snap, [(f[0], f[1].what) for f in failed])
            src, expected = runs[0][2], runs[0][3]
        out = tmp_path / "out"
        res = run_cli("restore", "--repo", url, f"{snap['id']}:{src}", "--target", out)
        assert res.code == 0, res.err
        assert diff(expected, digest(describe(out, atime=False))) == [], snap
        shutil.rmtree(out)
        for e in expected.values():
            if e[7] is not None:
                unique[e[7]] = e[4]

    # the shared files are stored once: the packs hold the unique data and little more
    stored, packs = _stored(cluster, "hosts/data/")
    print(f"stored {stored} in {packs} packs; unique {sum(unique.values())}")
    assert sum(unique.values()) <= stored <= sum(unique.values()) * 1.02 + packs * 2 * KiB
    assert stored - sum(unique.values()) < MiB  # not one more copy of a file all hosts hold
    # what happened, shown with -s: failures (times from the gateway's death, to its return)
    down, up = record.outage or (0.0, 0.0)
    for r in record.runs:
        if r.code != 0:
            print(
                f"{r.args[0]} [{r.started - down:+.1f} s, {r.ended - up:+.1f} s]: {error_line(r)}"
            )
    prunes = [json.loads(r.out) for r in record.runs if r.args[0] == "prune" and r.code == 0]
    print(
        f"saved {len(saved)}, failed {len(failed)} "
        f"({sorted(host for host, *_ in failed)}), runs {len(record.runs)}, "
        f"prunes {len(prunes)} ({sum(p['bytes_freed'] > 0 for p in prunes)} freed), "
        f"maintenance failures {sum(r.code != 0 and r.args[0] != 'backup' for r in record.runs)}"
    )
