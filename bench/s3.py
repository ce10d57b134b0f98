"""Objects and bytes written per GiB backed up, on a real S3-compatible server (SeaweedFS),
for cairn and restic at their default settings: PUT requests are what S3 bills."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from bench import tools
from bench.measure import run

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3server  # noqa: E402  (the same SeaweedFS launcher the tests use)

MAKE_DATASET = ROOT.parent / "shared" / "bench" / "make_dataset.py"


def _bucket_stats(client, prefix: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=s3server.BUCKET, Prefix=prefix
    ):
        for obj in page.get("Contents", []):
            count += 1
            size += obj["Size"]
    return count, size


def _dataset_bytes(path: Path) -> int:
    return int(run(["du", "-sb", "--apparent-size", str(path)]).stdout.split()[0])


def s3_run(args: argparse.Namespace) -> dict[str, object]:
    tools.ensure_installed()
    work = Path(args.workdir)
    dataset = work / "dataset"
    subprocess.run(
        [sys.executable, str(MAKE_DATASET), str(dataset), "--size", args.size],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    gib = _dataset_bytes(dataset) / 2**30
    server = s3server.start()
    try:
        env = server.env()
        client = server.client()
        cairn = tools.Cairn(work, url=server.url("bench-cairn"), extra_env=env)
        restic = tools.Restic(
            work, url=f"s3:{server.endpoint}/{s3server.BUCKET}/bench-restic", extra_env=env
        )
        rows = {}
        for tool, prefix in ((cairn, "bench-cairn/"), (restic, "bench-restic/")):
            tool.reset()
            tool.init()
            base = _bucket_stats(client, prefix)
            tool.backup(dataset)
            first = _bucket_stats(client, prefix)
            rows[tool.name] = {
                "objects_first_backup": first[0] - base[0],
                "bytes_first_backup": first[1] - base[1],
            }
        subprocess.run(
            [
                sys.executable,
                str(MAKE_DATASET),
                str(dataset),
                "--size",
                args.size,
                "--mutate",
                "--day",
                "1",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for tool, prefix in ((cairn, "bench-cairn/"), (restic, "bench-restic/")):
            before = _bucket_stats(client, prefix)
            tool.backup(dataset)
            after = _bucket_stats(client, prefix)
            rows[tool.name]["objects_mutated_backup"] = after[0] - before[0]
            rows[tool.name]["bytes_mutated_backup"] = after[1] - before[1]
    finally:
        server.stop()
        shutil.rmtree(work / "cache-cairn", ignore_errors=True)
    lines = [
        f"Dataset: {gib:.2f} GiB ({args.size}) on SeaweedFS (weed mini), default settings of both tools",
        "",
        "| tool | objects / GiB (first) | MiB stored / GiB (first) | objects (after 1 day) | MiB (after 1 day) |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['objects_first_backup'] / gib:.1f} | {r['bytes_first_backup'] / 2**20 / gib:.0f} | "
            f"{r['objects_mutated_backup']} | {r['bytes_mutated_backup'] / 2**20:.1f} |"
        )
    ratio = rows["cairn"]["objects_first_backup"] / rows["restic"]["objects_first_backup"]
    lines += ["", f"cairn / restic objects per GiB: {ratio:.2f}"]
    return {"dataset_gib": gib, "tools": rows, "objects_ratio": ratio, "table": "\n".join(lines)}
