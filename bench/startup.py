"""What every cairn command pays before it does its work: the imports of the entry point, and
the time of `cairn --help`, of `cairn snapshots --json` on a small repository and of
`cairn backup --json` of a small directory, for this checkout and, with --baseline, another.

    python -m bench.startup --baseline ../old/src --runs 5

Each source tree is byte-compiled first (as an installed package is): this machine sets
PYTHONDONTWRITEBYTECODE, so an uncompiled tree would be compiled again on every command. The
runs take the trees in turn (ABAB...), and every figure is the median of the runs: the import
time is `python -X importtime -c "import cairn.cli.main"` summed over the modules it loads;
the commands are timed by /usr/bin/time (wall, user and system seconds).
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PASSWORD = "x"
ROOT = Path(__file__).resolve().parent.parent


def import_ms(src: Path) -> float:
    """The sum of every module's own import time (ms): the entry point's whole import."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cairn.cli.main"],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            total += int(line.split(":", 1)[1].split("|")[0])
    return total / 1000


def timed(src: Path, args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall, user, system) seconds of ``cairn ARGS`` by /usr/bin/time."""
    cairn = Path(sys.executable).parent / "cairn"
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(
            ["/usr/bin/time", "-o", out.name, "-f", "%e %U %S", str(cairn), *args],
            env={**os.environ, **env, "PYTHONPATH": str(src)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        wall, user, system = (float(x) for x in out.read().split()[-3:])
    return wall, user, system


def make_data(path: Path, files: int = 200) -> None:
    """A small directory: ``files`` files of 1 to 32 KiB, in 10 directories."""
    rng = random.Random(1)
    for i in range(files):
        d = path / f"d{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(rng.randbytes(rng.randint(1, 32) << 10))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="another checkout's src directory, measured alike")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/cairn-bench-startup", help="repositories, caches")
    a = ap.parse_args()
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    make_data(data)
    trees = {"this": ROOT / "src"}
    if a.baseline:
        trees = {"baseline": Path(a.baseline).resolve(), **trees}
    envs = {}
    for name, src in trees.items():
        compileall.compile_dir(src, quiet=1)
        env = {"CAIRN_PASSWORD": PASSWORD, "CAIRN_CACHE_DIR": str(work / f"cache-{name}")}
        repo = work / f"repo-{name}"
        timed(src, ["init", "--repo", str(repo)], env)
        timed(src, ["backup", "--repo", str(repo), str(data)], env)  # the files cache filled
        envs[name] = env
    commands = {
        "import cairn.cli.main": None,
        "cairn --help": ["--help"],
        "cairn snapshots --json": ["snapshots", "--repo", "{repo}", "--json"],
        "cairn backup --json": ["backup", "--repo", "{repo}", str(data), "--json"],
    }
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for run in range(a.runs):
        order = list(trees) if run % 2 == 0 else list(reversed(trees))
        for what, args in commands.items():
            for name in order:
                src = trees[name]
                if args is None:
                    figure: tuple[float, ...] = (import_ms(src),)
                else:
                    repo = str(work / f"repo-{name}")
                    figure = timed(src, [x.replace("{repo}", repo) for x in args], envs[name])
                results.setdefault((what, name), []).append(figure)
    print(f"medians of {a.runs} runs; commands: wall, user, system seconds (user+system)")
    for what in commands:
        for name in trees:
            runs = results[(what, name)]
            medians = [statistics.median(col) for col in zip(*runs, strict=True)]
            if len(medians) == 1:
                print(f"{what:24} {name:9} {medians[0]:7.0f} ms")
            else:
                wall, user, system = medians
                cpu = statistics.median(u + s for _, u, s in runs)
                print(f"{what:24} {name:9} {wall:5.2f} {user:5.2f} {system:5.2f} ({cpu:.2f})")


if __name__ == "__main__":
    main()
