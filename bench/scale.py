"""Scale: the in-memory index at 10 million blobs, a tree of a million small files (cairn
against restic), and a 10 GiB file (flat memory).

    python -m bench.scale index [--blobs 10000000]
    python -m bench.scale files [--files 10000,100000,1000000] [--runs 1] [--cold]
    python -m bench.scale bigfile [--size 10G]
    python -m bench.scale scan [--files 200000] [--runs 3]   # backups with and without the scanner
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench import tools
from bench.measure import run
from bench.stream_memory import generate
from cairn.core.memory import tune_malloc
from cairn.core.units import parse_size
from cairn.repo.index import BlobIndex, PackInfo, PackRecord
from cairn.repo.pack import BlobRef

BLOBS_PER_PACK = 10_000


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def index_scale(blobs: int) -> dict[str, float]:
    tune_malloc()  # as the cairn command does
    rng = random.Random(7)
    index = BlobIndex()
    before = _rss_mib()
    t0 = time.monotonic()
    sample: list[bytes] = []
    for p in range(0, blobs, BLOBS_PER_PACK):
        n = min(BLOBS_PER_PACK, blobs - p)
        ids = [rng.randbytes(32) for _ in range(n)]
        if len(sample) < 1_000_000 and p % (BLOBS_PER_PACK * 10) == 0:
            sample.extend(ids[:1000])
        record = PackRecord(
            PackInfo(rng.randbytes(32), rng.randbytes(32), 0),
            [BlobRef(b, 40 + i * 1000, 1000, 990) for i, b in enumerate(ids)],
        )
        index.add_pack(record)
    index.total_blobs_by_type()  # merges what is pending
    build = time.monotonic() - t0
    misses = [rng.randbytes(32) for _ in range(len(sample))]
    t0 = time.monotonic()
    for b in sample:
        assert b in index
    hits_rate = len(sample) / (time.monotonic() - t0)
    t0 = time.monotonic()
    for b in misses:
        assert b not in index
    miss_rate = len(misses) / (time.monotonic() - t0)
    built = _rss_mib()
    # as a backup asks: a directory's ids at once, half of them known
    t0 = time.monotonic()
    for k in range(0, len(sample), 500):
        found = index.contains_all(sample[k : k + 500] + misses[k : k + 500])
        assert sum(found) == len(sample[k : k + 500])
    batch_rate = 2 * len(sample) / (time.monotonic() - t0)
    return {
        "blobs": blobs,
        "bytes_per_blob": index.nbytes() / blobs,
        "rss_growth_mib": _rss_mib() - before,
        "rss_before_mib": before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "build_s": build,
        "lookups_per_s_hit": hits_rate,
        "lookups_per_s_miss": miss_rate,
        "lookups_per_s_batch": batch_rate,
        # what the batch lookups added (before: a copy of the ids' leading bytes)
        "rss_growth_batch_mib": _rss_mib() - built,
    }


def make_files(root: Path, count: int, per_dir: int = 1000) -> None:
    rng = random.Random(11)
    for i in range(count):
        d = root / f"d{i // per_dir:05d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        fd = os.open(d / f"f{i:07d}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, rng.randbytes(rng.randint(10, 400)))
        os.close(fd)


def files_tree(work: Path, count: int) -> Path:
    """The tree of ``count`` tiny files in ``work``, made once and kept between runs."""
    tree = work / f"many-{count}"
    done = work / f"many-{count}.done"
    if not done.exists():
        shutil.rmtree(tree, ignore_errors=True)
        make_files(tree, count)
        done.touch()
    return tree


def drop_caches() -> None:
    """Empties the page, dentry and inode caches (root only), so that a backup reads its
    tree from the disk as the first backup of a machine's files does."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        raise SystemExit(f"--cold needs root (writing /proc/sys/vm/drop_caches): {e}") from e


def files_scale(work: Path, counts: list[int], runs: int, cold: bool) -> dict[str, object]:
    """Each tool backs up a tree of ``count`` tiny files, first and unchanged, ``runs``
    times (the tools in turn within a run); medians. ``cold``: the caches are dropped
    before each backup."""
    tools.ensure_installed()
    out: dict[str, object] = {"cold": cold, "runs": runs}
    for count in counts:
        tree = files_tree(work, count)
        samples: dict[str, dict[str, list[float]]] = {}
        for _ in range(runs):
            for tool in (tools.Cairn(work), tools.Restic(work)):
                tool.reset()
                tool.init()
                got = samples.setdefault(tool.name, {})
                for phase in ("first", "unchanged"):
                    if cold:
                        drop_caches()
                    m = tool.backup(tree)
                    got.setdefault(f"{phase}_s", []).append(m.wall)
                    got.setdefault(f"{phase}_cpu_s", []).append(m.cpu)
                    got.setdefault(f"{phase}_rss_mib", []).append(m.max_rss_mib)
                print(count, tool.name, {k: v[-1] for k, v in got.items()}, flush=True)
                tool.reset()
        row: dict[str, object] = {
            name: {k: round(statistics.median(v), 2) for k, v in got.items()}
            for name, got in samples.items()
        }
        for phase in ("first", "unchanged"):
            c, r = samples["cairn"][f"{phase}_s"], samples["restic"][f"{phase}_s"]
            row[f"{phase}_ratio"] = round(statistics.median(c) / statistics.median(r), 2)
        out[str(count)] = row
    return out


def scan_scale(work: Path, count: int, runs: int) -> dict[str, object]:
    """The backup's scanner (it counts the tree in a child process, for progress): a tree
    of small files backed up first and unchanged, with it and with --no-scan, in turn; the
    median of ``runs`` of each. Progress goes to a pipe, so the backups draw nothing."""
    tree = files_tree(work, count)
    times: dict[str, dict[str, list[float]]] = {}
    for r in range(runs):
        modes = [("scan", ()), ("no-scan", ("--no-scan",))]
        for mode, extra in modes if r % 2 == 0 else modes[::-1]:
            tool = tools.Cairn(work)
            tool.reset()
            tool.init()
            for phase in ("first", "unchanged"):
                m = run(tool.cmd("backup", str(tree), "--json", *extra), tool.env())
                t = times.setdefault(f"{mode} {phase}", {"wall_s": [], "cpu_s": []})
                t["wall_s"].append(m.wall)
                t["cpu_s"].append(m.cpu)
                print(mode, phase, f"{m.wall:.2f} s wall, {m.cpu:.2f} s CPU", flush=True)
            tool.reset()
    return {
        "files": count,
        "runs": runs,
        **{k: {f: statistics.median(v) for f, v in t.items()} for k, t in times.items()},
    }


def bigfile_scale(work: Path, size: int) -> dict[str, object]:
    path = work / "big.bin"
    with open(path, "wb") as f:
        generate(size, 5, f.fileno())
    tool = tools.Cairn(work)
    tool.reset()
    tool.init()
    m = tool.backup(path)
    result = {"size": size, "backup_s": m.wall, "rss_mib": m.max_rss_mib}
    tool.reset()
    path.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", choices=["index", "files", "bigfile", "scan"])
    ap.add_argument("--runs", type=int, default=None, help="files: 1 by default; scan: 3")
    ap.add_argument("--blobs", type=int, default=10_000_000)
    ap.add_argument(
        "--files", default=None, help="files in the tree; for files: a list, 10000,100000,..."
    )
    ap.add_argument(
        "--cold", action="store_true", help="files: drop the caches before each backup (root)"
    )
    ap.add_argument("--size", default="10G")
    ap.add_argument("--workdir", default="/tmp/cairn-bench-scale")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if args.what == "index":
        report = index_scale(args.blobs)
    elif args.what == "files":
        counts = [int(n) for n in (args.files or "1000000").split(",")]
        report = files_scale(work, counts, args.runs or 1, args.cold)
    elif args.what == "scan":
        report = scan_scale(work, int(args.files or 200_000), args.runs or 3)
    else:
        report = bigfile_scale(work, parse_size(args.size))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
