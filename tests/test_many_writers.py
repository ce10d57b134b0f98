"""Many writers at once, on the real SeaweedFS server: three hosts back up in a loop (one
backup in four killed with -9) while a fourth runs forget, prune and check in a loop.

Nothing may fail but the killed backups, no forget, prune or check may exit non-zero or report
damage on this healthy repository, prunes must free space while backups keep coming, and every
snapshot a backup reported saved (and no forget removed) restores exactly as it was."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.treecmp import describe, diff

HOSTS = 3
WINDOW = 50.0  # seconds of concurrent activity
KiB = 1 << 10


@dataclass
class Log:
    saved: dict[str, tuple[str, dict]] = field(default_factory=dict)  # type: ignore[type-arg]
    # killed backups: (host, started, ended, source, expected tree); one may have saved its
    # snapshot just before the kill
    killed_runs: list[tuple[str, float, float, str, dict]] = field(default_factory=list)  # type: ignore[type-arg]
    backup_failures: list[str] = field(default_factory=list)
    killed: int = 0
    maintenance_failures: list[str] = field(default_factory=list)
    prunes: list[dict] = field(default_factory=list)  # type: ignore[type-arg]
    checks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _env(tmp_path: Path, s3, host: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        **os.environ,
        **s3.env(),
        "CAIRN_PASSWORD": PASSWORD,
        "CAIRN_CACHE_DIR": str(tmp_path / f"cache-{host}"),
    }


def _run(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cairn", *map(str, args)], env=env, capture_output=True, check=False
    )


def _change(src: Path, rng: random.Random, shared: bytes) -> None:
    """One day's changes: a new file, a rewritten one, sometimes one removed; every host also
    holds the same shared file, so their data overlaps."""
    (src / "shared.bin").write_bytes(shared)
    name = f"f{rng.randrange(1_000_000):06d}.bin"
    (src / name).write_bytes(rng.randbytes(rng.randrange(64 * KiB, 768 * KiB)))
    files = sorted(p for p in src.iterdir() if p.name.startswith("f"))
    if len(files) > 3:
        files[rng.randrange(len(files))].write_bytes(rng.randbytes(200 * KiB))
    if len(files) > 6:
        files[0].unlink()


def _backups(url: str, tmp_path: Path, s3, host: str, seed: int, until: float, log: Log) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    env = _env(tmp_path, s3, host)
    src = tmp_path / f"src-{host}"
    src.mkdir()
    shared = random.Random(0).randbytes(512 * KiB)
    while time.monotonic() < until:
        _change(src, rng, shared)
        expected = describe(src, atime=False)
        started = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cairn", "backup", "--repo", url, src, "--host", host, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        kill = rng.random() < 0.25
        try:
            if kill:
                time.sleep(rng.uniform(0.3, 2.5))
                proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with log.lock:
            if kill and proc.returncode == -signal.SIGKILL:
                log.killed += 1
                log.killed_runs.append((host, started, time.time(), str(src), expected))
            elif proc.returncode != 0:
                log.backup_failures.append(f"{host}: exit {proc.returncode}: {err.decode()}")
            else:
                snap = json.loads(out)
                log.saved[snap["id"]] = (str(src), expected)


def _maintenance(url: str, tmp_path: Path, s3, until: float, log: Log) -> None:  # type: ignore[no-untyped-def]
    env = _env(tmp_path, s3, "admin")
    while time.monotonic() < until:
        for args in (
            ("forget", "--keep-last", "2", "--group-by", "host", "--json"),
            ("prune", "--max-unused", "10%", "--json"),
            ("check", "--json"),
        ):
            res = _run(env, args[0], "--repo", url, *args[1:])
            with log.lock:
                if res.returncode != 0:
                    log.maintenance_failures.append(
                        f"{args[0]}: exit {res.returncode}: {res.stderr.decode()}"
                        f"{res.stdout.decode()[-2000:]}"
                    )
                elif args[0] == "prune":
                    log.prunes.append(json.loads(res.stdout))
                elif args[0] == "check":
                    log.checks += 1
                    report = json.loads(res.stdout)
                    if not report["ok"]:
                        log.maintenance_failures.append(f"check: {report}")


@pytest.mark.slow
def test_three_hosts_back_up_while_forget_prune_and_check_loop(tmp_path, s3_server, s3_url):
    env = _env(tmp_path, s3_server, "admin")
    res = _run(env, "init", "--repo", s3_url, "--pack-size", "512K")
    assert res.returncode == 0, res.stderr
    log = Log()
    until = time.monotonic() + WINDOW
    threads = [
        threading.Thread(
            target=_backups, args=(s3_url, tmp_path, s3_server, f"host{h}", h, until, log)
        )
        for h in range(HOSTS)
    ]
    threads.append(
        threading.Thread(target=_maintenance, args=(s3_url, tmp_path, s3_server, until, log))
    )
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not any(t.is_alive() for t in threads)

    print(
        f"saved {len(log.saved)}, killed {log.killed}, prunes {len(log.prunes)} "
        f"({sum(p['postponed'] is None and p['bytes_freed'] > 0 for p in log.prunes)} freed, "
        f"waited {[round(p.get('waited', 0), 1) for p in log.prunes]}, "
        f"rescued {sum(p.get('packs_rescued', 0) for p in log.prunes)}), checks {log.checks}"
    )
    assert log.backup_failures == []
    assert log.maintenance_failures == []
    assert len(log.saved) >= 6 and log.checks >= 1
    freeing = [p for p in log.prunes if p["postponed"] is None and p["bytes_freed"] > 0]
    assert freeing, log.prunes

    # a quiet moment: everything reads back, and a last prune leaves nothing behind
    final = _run(env, "prune", "--repo", s3_url, "--json")
    assert final.returncode == 0 and json.loads(final.stdout)["postponed"] is None
    check = _run(env, "check", "--repo", s3_url, "--read-data", "--json")
    report = json.loads(check.stdout)
    assert check.returncode == 0 and report["ok"] and report["findings"] == [], report
    listed = _run(env, "snapshots", "--repo", s3_url, "--json")
    remaining = json.loads(listed.stdout)
    assert remaining
    for snap in remaining:
        snap_id = snap["id"]
        if snap_id in log.saved:
            src, expected = log.saved[snap_id]
        else:  # saved by a backup killed right after writing it
            when = datetime.fromisoformat(snap["time"]).timestamp()
            runs = [r for r in log.killed_runs if r[0] == snap["host"] and r[1] <= when <= r[2]]
            assert len(runs) == 1, (snap, log.killed_runs)
            src, expected = runs[0][3], runs[0][4]
        out = tmp_path / "out"
        res = _run(env, "restore", "--repo", s3_url, f"{snap_id}:{src}", "--target", out)
        assert res.returncode == 0, res.stderr
        assert diff(expected, describe(out, atime=False)) == [], snap_id
        shutil.rmtree(out)
