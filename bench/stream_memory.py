"""Peak memory of stream backups: does cairn's RSS stay flat as the stream grows?

    python -m bench.stream_memory                      # 64 MiB, 1 GiB and 10 GiB streams
    python -m bench.stream_memory --sizes 16M,256M     # quicker
    python -m bench.stream_memory --json               # one JSON document on stdout

Each size is backed up twice into a fresh local repository (default pack size and uploads):
piped into `cairn backup --stdin` (the peak RSS of cairn alone, from os.wait4), and through
`cairn backup --stdin-from-command` (cairn plus the generating command it runs, which wait4
covers too). A 1 MiB stream gives the baseline: a Python process with cairn loaded and the
repository open. The stream is an AES-CTR keystream, so it neither compresses nor deduplicates
and every byte ends up in packs: the worst case for memory. The repository is deleted after
each run (a 10 GiB run needs about 10.2 GiB of free disk for a moment).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cairn.core.units import format_bytes, parse_size

ROOT = Path(__file__).resolve().parent.parent
CAIRN = [sys.executable, "-m", "cairn"]
BLOCK = 1 << 20


def generate(size: int, seed: int, out: int = 1) -> None:
    """Writes ``size`` pseudo-random bytes to the file descriptor ``out``."""
    key = seed.to_bytes(32, "big")
    enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    zeros = bytes(BLOCK)
    left = size
    with os.fdopen(out, "wb", closefd=False) as f:
        while left > 0:
            n = min(BLOCK, left)
            f.write(enc.update(zeros[:n]))
            left -= n


def measure(size: int, mode: str, work: Path, seed: int) -> dict[str, float | int | str]:
    repo = work / "repo"
    env = {
        **os.environ,
        "CAIRN_PASSWORD": "stream-memory-benchmark",
        "CAIRN_CACHE_DIR": str(work / "cache"),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run([*CAIRN, "init", "--repo", str(repo), "-q"], env=env, check=True)
    backup = [*CAIRN, "backup", "--repo", str(repo), "--json", "--stdin-filename", "stream.bin"]
    gen = [sys.executable, "-m", "bench.stream_memory", "--generate", str(size), str(seed)]
    t0 = time.monotonic()
    if mode == "stdin":
        producer = subprocess.Popen(gen, stdout=subprocess.PIPE, env=env)
        consumer = subprocess.Popen(
            [*backup, "--stdin"], stdin=producer.stdout, stdout=subprocess.PIPE, env=env
        )
        assert producer.stdout is not None
        producer.stdout.close()
    else:
        producer = None
        consumer = subprocess.Popen(
            [*backup, "--stdin-from-command", "--", *gen], stdout=subprocess.PIPE, env=env
        )
    assert consumer.stdout is not None
    doc = consumer.stdout.read()
    _, status, ru = os.wait4(consumer.pid, 0)
    wall = time.monotonic() - t0
    consumer.returncode = os.waitstatus_to_exitcode(status)
    if producer is not None:
        producer.wait()
    if consumer.returncode != 0:
        raise RuntimeError(f"backup of {size} bytes failed with status {consumer.returncode}")
    summary = json.loads(doc)["summary"]
    if summary["bytes_read"] != size:
        raise RuntimeError(f"backup read {summary['bytes_read']} bytes, expected {size}")
    shutil.rmtree(repo)
    return {
        "mode": mode,
        "size": size,
        "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "mib_per_s": round(size / 2**20 / wall, 1),
        "packs": summary["packs_written"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64M,1G,10G", help="stream sizes (default 64M,1G,10G)")
    ap.add_argument("--modes", default="stdin,command", help="stdin, command or both")
    ap.add_argument("--workdir", default=None, help="where repositories go (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument(
        "--generate", nargs=2, type=int, metavar=("SIZE", "SEED"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.generate:
        generate(*args.generate)
        return
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cairn-stream-bench-"))
    results = []
    try:
        for mode in args.modes.split(","):
            base = measure(1 << 20, mode, work, seed=1)
            base["growth_mib"] = 0.0
            results.append(base)
            for i, size in enumerate(sizes):
                r = measure(size, mode, work, seed=i + 2)
                r["growth_mib"] = round(float(r["peak_rss_mib"]) - float(base["peak_rss_mib"]), 1)
                results.append(r)
                if not args.json:
                    print(
                        f"{mode:8} {format_bytes(size):>10}: peak RSS {r['peak_rss_mib']} MiB "
                        f"(+{r['growth_mib']} MiB over a 1 MiB stream), {r['wall_s']} s, "
                        f"{r['mib_per_s']} MiB/s, {r['cpu_s']} CPU s",
                        flush=True,
                    )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
