"""A restore from S3 before and after a change, with restic, in one run: one SeaweedFS server
(tests/s3server.py), one cairn repository and one restic repository of the benchmark dataset,
then full restores by the baseline tree (``--baseline``: a checkout of the code before), this
tree and restic, one after the other, ``--runs`` times for each link (``RTT_MS:MBIT``, through
``bench.shape_proxy``; ``0:0``: straight to the server). First, one restore by each cairn
straight to the server through the counting proxy (``bench.http_count``) counts its requests.

    python -m bench.restore_ab --baseline ../cairn-before [--size 256M] [--links 0:0,80:100]
                               [--runs 3] [--workdir DIR]

Prints each restore's wall seconds and peak RSS, then per link the medians and the share of the
link each used (the bytes stored over the time, as ``bench.latency`` computes it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from bench import tools
from bench.http_count import CountingProxy
from bench.measure import median, run
from bench.shape_proxy import ShapedLink

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3server  # noqa: E402

MAKE_DATASET = ROOT.parent / "shared" / "bench" / "make_dataset.py"


def _at(url: str, port: int, to: int) -> str:
    return url.replace(f":{port}/", f":{to}/", 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="a checkout of the code before")
    ap.add_argument("--size", default="256M")
    ap.add_argument("--links", default="0:0,80:100")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/cairn-restore-ab")
    args = ap.parse_args()
    tools.ensure_installed()
    tools.byte_compile_cairn()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / "dataset"
    subprocess.run(
        [sys.executable, str(MAKE_DATASET), str(dataset), "--size", args.size],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server = s3server.start()
    try:
        env = server.env()
        port = urlsplit(server.endpoint).port or 0
        url = server.url("ab-cairn")
        after = tools.Cairn(work, url=url, extra_env={**env, "PYTHONPATH": str(ROOT / "src")})
        before = tools.CairnAt(work, Path(args.baseline).resolve() / "src")
        before.url, before.extra_env, before.cache = url, env, after.cache
        restic = tools.Restic(work, url=f"s3:{server.endpoint}/{s3server.BUCKET}/ab-restic")
        restic.extra_env = env
        for tool in (after, restic):
            tool.reset()
            tool.init()
            tool.backup(dataset)
        stored = sum(
            o["Size"]
            for page in server.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=s3server.BUCKET, Prefix="ab-cairn/")
            for o in page.get("Contents", [])
        )
        target = work / "target"
        proxy = CountingProxy(("127.0.0.1", port))
        for tool in (before, after):
            shutil.rmtree(target, ignore_errors=True)
            proxy.take()
            cmd = tool.cmd("restore", f"latest:{dataset}", "--target", str(target))
            run(cmd, {**tool.env(), "CAIRN_REPOSITORY": _at(url, port, proxy.port)})
            print(f"{tool.name}: requests {dict(proxy.take().requests)}", flush=True)
        proxy.close()
        shutil.rmtree(target, ignore_errors=True)
        for spec in args.links.split(","):
            rtt, mbit = (float(x) for x in spec.split(":"))
            link = ShapedLink(port, rtt, mbit) if rtt or mbit else None
            to = port
            if link is not None:
                link.__enter__()
                to = link.port
            walls: dict[str, list[float]] = {"base": [], "cairn": [], "restic": []}
            try:
                for r in range(args.runs):
                    for tool in (before, after, restic):
                        if tool is restic:
                            e = {**tool.env(), "RESTIC_REPOSITORY": _at(tool.url, port, to)}
                            cmd = ["restic", "restore", "latest", "--target", str(target)]
                        else:
                            e = {**tool.env(), "CAIRN_REPOSITORY": _at(url, port, to)}
                            cmd = tool.cmd("restore", f"latest:{dataset}", "--target", str(target))
                        m = run(cmd, e)
                        shutil.rmtree(target, ignore_errors=True)
                        walls[tool.name].append(m.wall)
                        print(
                            f"{spec} run {r + 1} {tool.name:6} {m.wall:6.2f} s "
                            f"rss {m.max_rss_mib:.0f} MiB",
                            flush=True,
                        )
            finally:
                if link is not None:
                    link.__exit__(None, None, None)
            med = {k: median(v) for k, v in walls.items()}
            use = (
                {k: f"{stored * 8 / v / (mbit * 1e6):.0%}" for k, v in med.items()} if mbit else {}
            )
            shown = ", ".join(f"{k} {v:.2f} s" for k, v in med.items())
            print(f"{spec}: medians {shown}; after/before {med['cairn'] / med['base']:.2f}")
            if use:
                print(f"{spec}: link used {use}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
