"""The benchmark runner: cairn against restic and borg on the same data, in one run.

    python -m bench.run                      # 1 GiB dataset, 3 runs, local repositories
    python -m bench.run --size 256M --runs 1 # quicker
    python -m bench.run --s3                 # objects and bytes per GiB on SeaweedFS

Each figure is the median of the runs. The dataset comes from shared/bench/make_dataset.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import tools
from bench.measure import dir_size, median, run
from bench.s3 import s3_run
from bench.verify import fingerprint, same_tree
from bench.volume import FRESH, WORKDIR, restore_volume

ROOT = Path(__file__).resolve().parent.parent
MAKE_DATASET = ROOT.parent / "shared" / "bench" / "make_dataset.py"
PHASES = ("first", "unchanged", "mutated", "restore")


@dataclass
class ToolResult:
    times: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    rss: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    repo_size: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "time": {p: median(v) for p, v in self.times.items() if v},
            "cpu": {p: median(v) for p, v in self.cpu.items() if v},
            "rss_mib": {p: median(v) for p, v in self.rss.items() if v},
            "repo_mib": median([s / 2**20 for s in self.repo_size]) if self.repo_size else None,
        }


def make_dataset(dataset: Path, size: str, mutate_day: int | None = None) -> None:
    args = [sys.executable, str(MAKE_DATASET), str(dataset), "--size", size]
    if mutate_day is not None:
        args += ["--mutate", "--day", str(mutate_day)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def lower_bound(dataset: Path) -> float:
    return run("tar -cf - . | cat > /dev/null", cwd=str(dataset)).wall


def settle(dataset: Path) -> None:
    """The same start for every tool: no dirty pages waiting to be written back, and the
    dataset in the page cache (borg drops the cache of what it reads, so whichever tool came
    after it would otherwise read from the disk)."""
    os.sync()
    run("tar -cf - . | cat > /dev/null", cwd=str(dataset))


def local_run(args: argparse.Namespace) -> dict[str, object]:
    tools.ensure_installed()
    tools.byte_compile_cairn()
    work = Path(args.workdir)
    dataset = work / "dataset"
    names = args.tools.split(",")
    classes = {"cairn": tools.Cairn, "restic": tools.Restic, "borg": tools.Borg}
    if args.baseline:
        src = Path(args.baseline).resolve() / "src"
        classes["base"] = lambda work: tools.CairnAt(work, src)  # type: ignore[assignment]
        names.append("base")
    results = {n: ToolResult() for n in names}
    bounds = []
    for n in names:
        shutil.rmtree(work / f"restore-{n}", ignore_errors=True)
    for r in range(args.runs):
        print(f"run {r + 1}/{args.runs}: building dataset ({args.size})", flush=True)
        make_dataset(dataset, args.size)
        os.sync()
        bounds.append(lower_bound(dataset))
        # each run starts with another tool, so none always meets the same leftovers of the
        # one before it; dirty pages are written back before every measured phase
        order = names[r % len(names) :] + names[: r % len(names)]
        active = {n: classes[n](work) for n in order}
        for n, tool in active.items():
            tool.reset()
            tool.init()
            for phase in ("first", "unchanged"):
                settle(dataset)
                m = tool.backup(dataset)
                _record(results[n], phase, m)
                _show(n, phase, m)
        make_dataset(dataset, args.size, mutate_day=1)
        expected = fingerprint(dataset)
        room = 2 * dir_size(str(dataset)) + (1 << 30)
        for n, tool in active.items():
            settle(dataset)
            m = tool.backup(dataset)
            _record(results[n], "mutated", m)
            _show(n, "mutated", m)
            with restore_volume(work, args.restore_on, room) as into:
                target = into / f"restore-{n}"
                os.sync()
                m, where = tool.restore(dataset, target)
                problems = same_tree(expected, where)
            if problems:
                raise SystemExit(f"{n}: restore differs from the source: {problems[:10]}")
            _record(results[n], "restore", m)
            _show(n, "restore", m, "(verified)")
            results[n].repo_size.append(tool.repo_size())
        # In the work directory, restored trees are deleted only now: creating files right after
        # tens of thousands were deleted costs much more kernel time on an ext4 without a
        # journal (bench/volume.py), which would tax whichever tool restores after another's
        # clean-up. A fresh file system for each restore goes with its tree.
        if args.restore_on == WORKDIR:
            for n in active:
                shutil.rmtree(work / f"restore-{n}", ignore_errors=True)
    return {
        "machine": machine(),
        "size": args.size,
        "runs": args.runs,
        "restore_on": args.restore_on,
        "lower_bound_read_s": median(bounds),
        "tools": {n: res.summary() for n, res in results.items()},
    }


def _show(name: str, phase: str, m, note: str = "") -> None:  # type: ignore[no-untyped-def]
    print(
        f"  {name:6} {phase:9} {m.wall:6.2f}s  cpu {m.cpu:6.2f}s  rss {m.max_rss_mib:6.1f} MiB {note}",
        flush=True,
    )


def _record(res: ToolResult, phase: str, m) -> None:  # type: ignore[no-untyped-def]
    res.times[phase].append(m.wall)
    res.cpu[phase].append(m.cpu)
    res.rss[phase].append(m.max_rss_mib)


def machine() -> dict[str, object]:
    restic = (
        run(["restic", "version"]).stdout.decode().split()[1] if shutil.which("restic") else None
    )
    borg = run(["borg", "--version"]).stdout.decode().split()[-1] if shutil.which("borg") else None
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "restic": restic,
        "borg": borg,
    }


def ratio_table(report: dict[str, object]) -> str:
    toolsum = report["tools"]  # type: ignore[index]
    cairn = toolsum["cairn"]  # type: ignore[index]
    lines = [
        "| metric | cairn | restic | borg | cairn/restic | cairn/borg |",
        "|---|---|---|---|---|---|",
    ]

    def row(label: str, get, fmt: str) -> None:  # type: ignore[no-untyped-def]
        vals = {n: get(toolsum[n]) for n in toolsum}  # type: ignore[union-attr]
        c = vals.get("cairn")
        cells = [
            fmt.format(vals[n]) if vals.get(n) is not None else "-"
            for n in ("cairn", "restic", "borg")
        ]
        ratios = [
            f"{c / vals[n]:.2f}" if c is not None and vals.get(n) else "-"
            for n in ("restic", "borg")
        ]
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")

    for p in PHASES:
        row(f"{p} (s)", lambda t, p=p: t["time"].get(p), "{:.2f}")
    for p in PHASES:
        row(f"peak RSS {p} (MiB)", lambda t, p=p: t["rss_mib"].get(p), "{:.0f}")
    for p in PHASES:
        row(f"CPU {p} (s)", lambda t, p=p: t["cpu"].get(p), "{:.2f}")
    row("repository (MiB)", lambda t: t["repo_mib"], "{:.0f}")
    if "base" in toolsum:
        base = toolsum["base"]  # type: ignore[index]
        lines.append("")
        lines.append("| phase | cairn (s) | baseline (s) | after/before | RSS after/before |")
        lines.append("|---|---|---|---|---|")
        for p in PHASES:
            a, b = cairn["time"].get(p), base["time"].get(p)  # type: ignore[index]
            ra, rb = cairn["rss_mib"].get(p), base["rss_mib"].get(p)  # type: ignore[index]
            if a and b:
                lines.append(f"| {p} | {a:.2f} | {b:.2f} | {a / b:.2f} | {ra / rb:.2f} |")
    lb = report["lower_bound_read_s"]
    lines.append("")
    lines.append(
        f"Read-only lower bound (tar | cat): {lb:.2f} s; cairn first backup / lower bound: "
        f"{cairn['time']['first'] / lb:.2f}x"  # type: ignore[index]
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="1G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/cairn-bench")
    ap.add_argument("--tools", default="cairn,restic,borg")
    ap.add_argument("--s3", action="store_true", help="objects and bytes per GiB on SeaweedFS")
    ap.add_argument(
        "--restore-on",
        choices=[FRESH, WORKDIR],
        default=FRESH,
        help="restore onto a fresh ext4 file system each run (needs root; the default), or "
        "into the work directory's own file system",
    )
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the cairn of another checkout (DIR/src), as 'base': before and after",
    )
    ap.add_argument("--out", help="write the JSON report here")
    args = ap.parse_args(argv)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.s3:
        report = s3_run(args)
        text = report.pop("table")
    else:
        report = local_run(args)
        text = ratio_table(report)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
