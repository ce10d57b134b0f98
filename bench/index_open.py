"""What opening a repository with a large index costs on S3: requests, bytes, time and memory.

    python -m bench.index_open [--blobs 1000000,10000000] [--blobs-per-pack 100]
                               [--workdir DIR] [--local] [--baseline DIR]
                               [--reads open,check,prune]

For each size, a repository is created on the SeaweedFS test server (``--local``: in a
directory) and given an index of that many synthetic blobs (random ids, ``--blobs-per-pack``
blobs per pack, written as cairn writes index objects: 50,000 blobs each, compressed and
encrypted). Then a backup of an empty directory, which opens the repository and loads the
whole index, is run twice: with an empty cache (every index object downloaded) and again (the
host's copies of the index objects, docs/format.md §13, make the downloads unnecessary). Each
row gives the backup's wall time, peak RSS, and the requests and bytes down its ``--json``
summary counts. No pack exists: nothing but the index is read. ``--baseline DIR``: each
repository is also opened (cold, then warm, taking turns with the current code) by the cairn
whose sources are in DIR (put first on PYTHONPATH, e.g. an export of an earlier commit's
``src``), for a before and after measured in one run. ``--reads``: which of these read the
index: ``open`` (the backups above), ``check`` and ``prune`` (each a process of its own reading
the whole index as that command does, bench/index_read.py: its seconds and peak RSS).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import shutil
import sys
from pathlib import Path

from bench import tools
from bench.measure import run
from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.repo import layout
from cairn.repo.index import INDEX_OBJECT_BLOBS, PackInfo, PackRecord
from cairn.repo.pack import BlobRef
from cairn.repo.repository import Repository

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3server  # noqa: E402  (the same SeaweedFS launcher the tests use)


def fill_index(url: str, password: str, blobs: int, per_pack: int, env: dict[str, str]) -> int:
    """Writes index objects naming ``blobs`` synthetic blobs; returns their stored bytes."""
    os.environ.update(env)  # the store's credentials, as the command gets them
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    repo = Repository.open(storage, password.encode())
    rng = random.Random(13)
    batch: list[PackRecord] = []
    count = 0
    for start in range(0, blobs, per_pack):
        n = min(per_pack, blobs - start)
        info = PackInfo(rng.randbytes(32), rng.randbytes(32), layout.DATA_BLOB)
        # blobs of about 0.5 MiB, laid out one after another in their pack
        refs = [BlobRef(rng.randbytes(32), 40 + i * 524_328, 524_328, 524_288) for i in range(n)]
        batch.append(PackRecord(info, refs))
        count += n
        if count >= INDEX_OBJECT_BLOBS:
            repo.write_index(batch)
            batch, count = [], 0
    if batch:
        repo.write_index(batch)
    return sum(size for _, size in storage.list(layout.INDEX))


def one_size(
    work: Path,
    url: str,
    env: dict[str, str],
    blobs: int,
    per_pack: int,
    baseline: str | None,
    reads: list[str],
) -> list[dict[str, object]]:
    """A row per variant: the current code (``""``), then ``baseline`` if given."""
    tool = tools.Cairn(work, url=url, extra_env=env)
    tool.reset()
    tool.init()
    stored = fill_index(url, tools.PASSWORD, blobs, per_pack, env)
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    variants = {"": {}} if baseline is None else {"": {}, baseline: {"PYTHONPATH": baseline}}
    rows: dict[str, dict[str, object]] = {
        v: {"blobs": blobs, "index_mib": stored / 2**20, "variant": v} for v in variants
    }
    for phase in ("cold", "warm") if "open" in reads else ():
        for variant, extra in variants.items():
            if phase == "cold":
                shutil.rmtree(tool.cache, ignore_errors=True)
            m = run(tool.cmd("backup", str(empty), "--json"), {**tool.env(), **extra})
            requests = json.loads(m.stdout)["summary"]["requests"]
            rows[variant][phase] = {
                "wall_s": m.wall,
                "cpu_s": m.cpu,
                "rss_mib": m.max_rss_mib,
                "requests": {k: v for k, v in requests.items() if not k.startswith("bytes")},
                "mib_down": requests["bytes_down"] / 2**20,
            }
            print(blobs, variant or "current", phase, rows[variant][phase], flush=True)
    for command in [r for r in reads if r != "open"]:
        for variant, extra in variants.items():
            m = run([sys.executable, "-m", "bench.index_read", command], {**tool.env(), **extra})
            rows[variant][command] = {
                **json.loads(m.stdout),
                "cpu_s": m.cpu,
                "rss_mib": m.max_rss_mib,
            }
            print(blobs, variant or "current", command, rows[variant][command], flush=True)
    tool.reset()
    return list(rows.values())


def read_table(rows: list[dict[str, object]], reads: list[str]) -> str:
    """Reading the whole index as ``check`` and ``prune`` do: seconds, the process's peak RSS."""
    lines = [
        "| blobs | " + " | ".join(f"{r}: s, peak RSS, RSS before" for r in reads) + " |",
        "|---" * (len(reads) + 1) + "|",
    ]
    for r in rows:
        name = f"{r['blobs']:,}" + (f" ({r['variant']})" if r["variant"] else "")
        cells = [
            f"{r[c]['seconds']:.1f} s, {r[c]['rss_mib']:.0f} MiB, "  # type: ignore[index]
            f"{r[c]['rss_before_mib']:.0f} MiB"  # type: ignore[index]
            for c in reads
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| blobs | index stored (MiB) | open, empty cache: s, peak RSS, requests, MiB down "
        "| open again: s, peak RSS, requests, MiB down |",
        "|---|---|---|---|",
    ]
    for r in rows:
        cells = []
        for phase in ("cold", "warm"):
            p = r[phase]
            reqs = p["requests"]  # type: ignore[index]
            kinds = ", ".join(f"{k.upper()} {v}" for k, v in reqs.items() if v)  # type: ignore[union-attr]
            cells.append(
                f"{p['wall_s']:.1f} s, {p['rss_mib']:.0f} MiB, {kinds}, "  # type: ignore[index]
                f"{p['mib_down']:.1f}"  # type: ignore[index]
            )
        name = f"{r['blobs']:,}" + (f" ({r['variant']})" if r["variant"] else "")
        lines.append(f"| {name} | {r['index_mib']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--blobs", default="1000000,10000000")
    ap.add_argument("--blobs-per-pack", type=int, default=100)
    ap.add_argument("--workdir", default="/tmp/cairn-bench-open")
    ap.add_argument("--local", action="store_true", help="a local directory, not SeaweedFS")
    ap.add_argument("--baseline", help="also open with the cairn sources in this directory")
    ap.add_argument(
        "--reads",
        default="open",
        help="what reads the index, of open (a backup), check and prune (bench.index_read)",
    )
    args = ap.parse_args()
    reads = args.reads.split(",")
    tools.ensure_installed()
    tools.byte_compile_cairn()
    if args.baseline:
        compileall.compile_dir(args.baseline, quiet=1)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(b) for b in args.blobs.split(",")]
    rows = []
    server = None if args.local else s3server.start()
    try:
        for n in sizes:
            if server is None:
                url, env = str(work / f"repo-{n}"), {}
            else:
                url, env = server.url(f"open-{n}"), server.env()
            rows.extend(one_size(work, url, env, n, args.blobs_per_pack, args.baseline, reads))
    finally:
        if server is not None:
            server.stop()
    if "open" in reads:
        print(table(rows))
    others = [r for r in reads if r != "open"]
    if others:
        print(read_table(rows, others))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
