"""The first backup of the benchmark dataset on one core and on two: CPU seconds per GiB, how
much of the work runs in parallel, and what a third core would give.

    python -m bench.cores [--size 1G] [--runs 3] [--workdir DIR]

Each run backs the dataset up into a fresh local repository twice, once confined to one core
(``taskset -c 0``) and once on both, in turn (the order alternates from run to run). From the
medians, T1 on one core and T2 on two, the share of the work that runs in parallel follows
(Amdahl: T2 = T1 (1 - p + p/2)), and with it the time on three cores, T1 (1 - p + p/3). That is
a projection, not a measurement: this machine has two cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench import tools
from bench.measure import median, run
from bench.run import make_dataset, settle


def cores_run(work: Path, size: str, runs: int) -> dict[str, object]:
    tools.ensure_installed()
    tools.byte_compile_cairn()
    dataset = work / "dataset"
    make_dataset(dataset, size)
    data = sum(f.stat().st_size for f in dataset.rglob("*") if f.is_file() and not f.is_symlink())
    walls: dict[int, list[float]] = {1: [], 2: []}
    cpus: dict[int, list[float]] = {1: [], 2: []}
    for r in range(runs):
        for cores in (1, 2) if r % 2 == 0 else (2, 1):
            tool = tools.Cairn(work)
            tool.reset()
            tool.init()
            settle(dataset)
            cmd = tool.cmd("backup", str(dataset), "--json")
            if cores == 1:
                cmd = ["taskset", "-c", "0", *cmd]
            m = run(cmd, tool.env())
            walls[cores].append(m.wall)
            cpus[cores].append(m.cpu)
            print(f"{cores} core(s): {m.wall:.2f} s wall, {m.cpu:.2f} s CPU", flush=True)
            tool.reset()
    t1, t2 = median(walls[1]), median(walls[2])
    parallel = min(1.0, max(0.0, 2 * (1 - t2 / t1)))
    gib = data / 2**30
    return {
        "size": size,
        "data_gib": gib,
        "runs": runs,
        "one_core_s": t1,
        "two_cores_s": t2,
        "cpu_s_per_gib": median(cpus[2]) / gib,
        "cpu_s_per_gib_one_core": median(cpus[1]) / gib,
        "parallel_share": parallel,
        "three_cores_projected_s": t1 * (1 - parallel + parallel / 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="1G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/cairn-bench-cores")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(json.dumps(cores_run(work, args.size, args.runs), indent=2))
    finally:
        shutil.rmtree(work / "dataset", ignore_errors=True)


if __name__ == "__main__":
    main()
