"""Many hosts backing up into one repository at once, on a SeaweedFS cluster on loopback
(tests/s3cluster.py: a master, three volume servers with replication 001, a filer and the S3
gateway, each its own process): aggregate throughput against the number of hosts, and the time
each backup spent on repository locks.

    python -m bench.hosts [--hosts 1,2,4,6] [--size 64M] [--runs 3] [--workdir DIR]

Each host is a `cairn backup` process with its own --host, its own cache directory (empty: a
first backup) and its own tree of ``--size`` of incompressible files; all of a run's hosts
start together into a fresh repository, and the run's time is from the first start to the last
end. Aggregate throughput is the bytes of all hosts over that time. A fresh cluster serves each
host count, so earlier runs' volumes do not weigh on later ones.

The lock time of a backup is what it spent in the lock calls (writing its lock, reading the
others', removing its own), timed inside each process; a backup never waits for another's
lock (docs/format.md §12), so this is all the locking it does. CPU seconds are taken for the
cairn processes (their rusage) and for each SeaweedFS process (/proc/PID/stat), to tell where
the machine's cores went.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import tools
from cairn.core.units import format_bytes, parse_size

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3cluster  # noqa: E402  (the same cluster launcher the tests use)

PASSWORD = "bench hosts password"
FILE = 4 << 20
# runs cairn's command line with the lock calls timed; the seconds go to the file named first
_PROBE = """
import json, sys, time
from cairn.repo import locks
spent = {"write": 0.0, "read": 0.0, "remove": 0.0}
def timed(name, fn):
    def call(*args, **kwargs):
        t = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.monotonic() - t
    return call
locks.Locks.write = timed("write", locks.Locks.write)
locks.Locks.read_all = timed("read", locks.Locks.read_all)
locks.Locks.remove = timed("remove", locks.Locks.remove)
from cairn.cli.main import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump(spent, f)
sys.exit(code)
"""


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def _weed_cpu(cluster: s3cluster.SeaweedCluster) -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    return {
        name: _cpu_ticks(s.proc.pid) / tick
        for name, s in cluster.services.items()
        if s.proc is not None
    }


def _machine() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, every core summed (/proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / tick, sum(ticks) / tick


def make_tree(root: Path, size: int, seed: int) -> None:
    root.mkdir(parents=True)
    rng = random.Random(seed)
    left, i = size, 0
    while left > 0:
        n = min(FILE, left)
        (root / f"f{i:03d}.bin").write_bytes(rng.randbytes(n))
        left, i = left - n, i + 1


def one_run(
    cluster: s3cluster.SeaweedCluster, work: Path, hosts: int, size: int, tag: str
) -> dict[str, object]:
    env = {**os.environ, **cluster.env(), "CAIRN_PASSWORD": PASSWORD}
    url = cluster.url(f"hosts-{tag}")
    subprocess.run(
        [sys.executable, "-m", "cairn", "init", "--repo", url],
        env=env,
        check=True,
        capture_output=True,
    )
    procs = []
    weed_before = _weed_cpu(cluster)
    machine_before = _machine()
    t0 = time.monotonic()
    for h in range(hosts):
        lockfile = work / f"locks-{tag}-{h}.json"
        procs.append(
            (
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _PROBE,
                        str(lockfile),
                        "backup",
                        "--repo",
                        url,
                        str(work / f"src{h}"),
                        "--host",
                        f"host{h}",
                        "--json",
                    ],
                    env={**env, "CAIRN_CACHE_DIR": str(work / f"cache-{tag}-{h}")},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                ),
                lockfile,
            )
        )
    walls, cpu, lock_s = [], 0.0, []
    for proc, lockfile in procs:
        _, status, ru = os.wait4(proc.pid, 0)
        walls.append(time.monotonic() - t0)
        cpu += ru.ru_utime + ru.ru_stime
        assert proc.stdout is not None and proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"backup failed: {err[-2000:]}")
        proc.stdout.close()
        proc.stderr.close()
        lock_s.append(sum(json.loads(lockfile.read_text()).values()))
    wall = max(walls)
    machine_after = _machine()
    weed_after = _weed_cpu(cluster)
    weed = {k: weed_after[k] - weed_before[k] for k in weed_after}
    return {
        "hosts": hosts,
        "wall_s": wall,
        "mib_s": hosts * size / wall / (1 << 20),
        "host_wall_mean_s": statistics.mean(walls),
        "lock_s_max": max(lock_s),
        "lock_s_mean": statistics.mean(lock_s),
        "cairn_cpu_s": cpu,
        "weed_cpu_s": sum(weed.values()),
        "weed_cpu_by_service": weed,
        # of the machine's CPU time during the run: how much was busy, and how much of it
        # went to this run (cairn and SeaweedFS); the rest went to other programs
        "machine_busy": (machine_after[0] - machine_before[0])
        / (machine_after[1] - machine_before[1]),
        "machine_ours": (cpu + sum(weed.values())) / (machine_after[1] - machine_before[1]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", default="1,2,4,6")
    ap.add_argument("--size", default="64M", help="each host's tree")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/cairn-bench-hosts")
    args = ap.parse_args(argv)
    counts = [int(n) for n in args.hosts.split(",")]
    size = parse_size(args.size)
    tools.byte_compile_cairn()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for h in range(max(counts)):
        make_tree(work / f"src{h}", size, h)
    results = []
    for hosts in counts:
        data = work / f"cluster-{hosts}"
        data.mkdir()
        cluster = s3cluster.start(data)
        try:
            runs = [one_run(cluster, work, hosts, size, f"{hosts}-{r}") for r in range(args.runs)]
        finally:
            cluster.stop()
            shutil.rmtree(data, ignore_errors=True)
        runs.sort(key=lambda r: r["mib_s"])  # type: ignore[arg-type, return-value]
        median = runs[len(runs) // 2]
        median["mib_s_all"] = [round(r["mib_s"], 1) for r in runs]  # type: ignore[call-overload]
        results.append(median)
        print(json.dumps(median), flush=True)
    print(f"\neach host {format_bytes(size)}, median of {args.runs} runs\n")
    print(
        "| hosts | wall | aggregate | per host | lock calls, mean / max | cairn CPU "
        "| SeaweedFS CPU | CPU per MiB | machine busy | this run's share |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")

    def cpu_per_mib(r: dict[str, Any]) -> float:
        return float(r["cairn_cpu_s"] + r["weed_cpu_s"]) / (r["hosts"] * size / (1 << 20))

    for r in results:
        print(
            f"| {r['hosts']} | {r['wall_s']:.1f} s | {r['mib_s']:.1f} MiB/s "
            f"| {r['mib_s'] / r['hosts']:.1f} MiB/s "  # type: ignore[operator]
            f"| {r['lock_s_mean'] * 1000:.0f} / {r['lock_s_max'] * 1000:.0f} ms "
            f"| {r['cairn_cpu_s']:.1f} s | {r['weed_cpu_s']:.1f} s "
            f"| {cpu_per_mib(r) * 1000:.0f} ms "
            f"| {r['machine_busy']:.0%} | {r['machine_ours']:.0%} |"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
