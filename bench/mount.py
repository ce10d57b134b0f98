"""cairn mount against restic mount on the same dataset (1 GiB by default), one run.

For each tool: a backup of the dataset, then three fresh mounts, one per task, so that no task
reads what the kernel's page cache kept from the one before: the whole snapshot read as a tar
stream (``tar -cf - . | cat >/dev/null``: GNU tar writing to /dev/null itself skips reading
the files' contents, which would time only the metadata), ``cat`` of the largest file, and
``find | wc -l``. The peak RSS is the mount process's over its three mounts (from wait4).

    .venv/bin/python -m bench.mount [--size 1G] [--workdir /tmp/cairn-bench-mount]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench import tools
from bench.measure import run
from bench.run import make_dataset, settle

TASKS = {
    "tar": "tar -cf - . | cat > /dev/null",
    "cat largest": "cat {largest} > /dev/null",
    "find | wc -l": "find . | wc -l",
}


def _mount_cmd(tool: tools.Tool, mnt: Path) -> list[str]:
    if isinstance(tool, tools.Cairn):
        return tool.cmd("mount", str(mnt))
    return ["restic", "mount", str(mnt)]


def _task(
    tool: tools.Tool, dataset: Path, mnt: Path, task: str, largest: str
) -> tuple[float, float]:
    """One mount: the task's wall time, and the mount process's peak RSS (MiB)."""
    proc = subprocess.Popen(
        _mount_cmd(tool, mnt),
        env={**os.environ, **tool.env()},  # type: ignore[attr-defined]
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    inside = mnt / "snapshots" / "latest" / str(dataset).lstrip("/")
    deadline = time.monotonic() + 120
    while not inside.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        wall = run(TASKS[task].format(largest=largest), cwd=str(inside)).wall
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGTERM)  # not reaped yet: wait4 below gives its rusage
        _, _, ru = os.wait4(proc.pid, 0)
        proc.returncode = 0
    return wall, ru.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--workdir", default="/tmp/cairn-bench-mount")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tools.ensure_installed()
    tools.byte_compile_cairn()
    dataset = work / "data"
    make_dataset(dataset, args.size)
    files = [p for p in dataset.rglob("*") if p.is_file() and not p.is_symlink()]
    largest = str(max(files, key=lambda p: p.stat().st_size).relative_to(dataset))
    results: dict[str, dict[str, float]] = {}
    for tool in (tools.Cairn(work), tools.Restic(work)):
        tool.init()
        tool.backup(dataset)
        mnt = work / f"mnt-{tool.name}"
        mnt.mkdir()
        row: dict[str, float] = {"rss": 0.0}
        for task in TASKS:
            settle(dataset)
            wall, rss = _task(tool, dataset, mnt, task, largest)
            row[task] = wall
            row["rss"] = max(row["rss"], rss)
        results[tool.name] = row
    cairn, restic = results["cairn"], results["restic"]
    print(f"| {args.size} dataset | cairn | restic 0.14 | cairn / restic |")
    print("|---|---|---|---|")
    for task in TASKS:
        print(
            f"| {task} | {cairn[task]:.2f} s | {restic[task]:.2f} s | {cairn[task] / restic[task]:.2f} |"
        )
    print(
        f"| peak RSS | {cairn['rss']:.0f} MiB | {restic['rss']:.0f} MiB | {cairn['rss'] / restic['rss']:.2f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
