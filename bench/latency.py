"""cairn and restic on S3 over a real network's latency and bandwidth: SeaweedFS behind a shaped
link (``bench.shape_proxy``: a delay each way and one bandwidth budget per direction shared by
all connections), first backup, unchanged backup, a day's changes and full restore, in one run.

    python -m bench.latency [--size 256M] [--links 0:0,20:100,80:100] [--runs 1]
                            [--memory-limit 128M] [--cluster]
                            [--phases first,unchanged,changed,restore,restore_file_order,dump]

Each link is ``RTT_MS:MBIT`` (``0:0``: straight to the server, no proxy). cairn's restore is
measured in both read orders (pack order is its default on S3; ``file`` is how it read before),
restic's with its defaults. The link's use is the bytes the restore downloaded (the size of the
repository's data, all of which a full restore reads) over its time, against the link's rate;
for the first backup, the bytes it sent over the link (counted by the proxy, headers included)
over its time.
With ``--memory-limit``, cairn's first backup is run once more into a fresh repository with
that limit; a second table gives every phase's peak RSS.
``--phases`` runs some of the phases only (the backups are always run, to have something to
restore; their times are shown only if asked for); a phase left out is ``-`` in the table.
``changed`` builds the dataset afresh for each link and run, and after both tools' unchanged
backups applies one day's changes to it (``make_dataset.py --mutate --day 1``, as ``bench.run``
does), then backs it up with each tool; the restores then restore that snapshot.
With ``--cluster`` the store is the SeaweedFS cluster of ``tests/s3cluster.py`` (a master,
three volume servers with replication 001, a filer and the S3 gateway, each its own process)
instead of one ``weed`` process.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from bench import tools
from bench.measure import Measurement, median, run
from bench.shape_proxy import ShapedLink

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3cluster, s3server  # noqa: E402  (the SeaweedFS launchers the tests use)

MAKE_DATASET = ROOT.parent / "shared" / "bench" / "make_dataset.py"
PHASES = ("first", "unchanged", "changed", "restore", "restore_file_order", "dump")


def _make_dataset(dataset: Path, size: str, mutate_day: int | None = None) -> None:
    args = [sys.executable, str(MAKE_DATASET), str(dataset), "--size", size]
    if mutate_day is not None:
        args += ["--mutate", "--day", str(mutate_day)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def _prefix_bytes(client, prefix: str) -> int:  # type: ignore[no-untyped-def]
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=s3server.BUCKET, Prefix=prefix
    ):
        total += sum(obj["Size"] for obj in page.get("Contents", []))
    return total


def _via(url: str, port: int) -> str:
    """``url`` with the server's port replaced by the proxy's."""
    server_port = urlsplit(url.split(":", 1)[1]).port
    return url.replace(f":{server_port}/", f":{port}/", 1)


def _one_link(
    work: Path,
    dataset: Path,
    server: s3server.S3Access,
    size: str,
    rtt: float,
    mbit: float,
    run_no: int,
    memory_limit: str | None = None,
    phases: tuple[str, ...] = PHASES,
) -> dict[str, object]:
    env = server.env()
    client = server.client()
    tag = f"{int(rtt)}ms-{int(mbit)}mbit-{run_no}"
    cairn_prefix, restic_prefix = f"lat-cairn-{tag}", f"lat-restic-{tag}"
    link = ShapedLink(urlsplit(server.endpoint).port or 0, rtt, mbit) if rtt or mbit else None
    rows: dict[str, dict[str, float]] = {"cairn": {}, "restic": {}}
    stored: dict[str, int] = {}
    try:
        if link is not None:
            link.__enter__()
        cairn_url = server.url(cairn_prefix)
        restic_url = f"s3:{server.endpoint}/{s3server.BUCKET}/{restic_prefix}"
        if link is not None:
            cairn_url, restic_url = _via(cairn_url, link.port), _via(restic_url, link.port)
        cairn = tools.Cairn(work, url=cairn_url, extra_env=env)
        restic = tools.Restic(work, url=restic_url, extra_env=env)
        if "changed" in phases:  # the day's changes are applied below: start from the base
            _make_dataset(dataset, size)
        for tool, prefix in ((cairn, cairn_prefix), (restic, restic_prefix)):
            tool.reset()
            tool.init()
            for phase in ("first", "unchanged"):
                sent = link.bytes_up if link is not None else 0
                m = tool.backup(dataset)
                if phase in phases:
                    _keep(rows, tool.name, phase, m)
                    if link is not None:  # what went over the link, every header included
                        rows[tool.name][f"{phase}_sent"] = link.bytes_up - sent
            stored[tool.name] = _prefix_bytes(client, prefix + "/")
        if "changed" in phases:
            _make_dataset(dataset, size, mutate_day=1)
            for tool in (cairn, restic):
                _keep(rows, tool.name, "changed", tool.backup(dataset))
        if memory_limit:
            limited = tools.Cairn(
                work, url=cairn_url.replace(cairn_prefix, cairn_prefix + "-limited"), extra_env=env
            )
            limited.reset()
            limited.init()
            m = run(
                limited.cmd("backup", str(dataset), "--memory-limit", memory_limit), limited.env()
            )
            _keep(rows, "cairn", "first_limited", m)
            # what any command costs (the interpreter, its libraries, the key derivation)
            _keep(rows, "cairn", "baseline", run(limited.cmd("snapshots"), limited.env()))
        for tool in (cairn, restic) if "restore" in phases else ():
            target = work / f"lat-restore-{tool.name}"
            shutil.rmtree(target, ignore_errors=True)
            m, _ = tool.restore(dataset, target)
            _keep(rows, tool.name, "restore", m)
            shutil.rmtree(target, ignore_errors=True)
        if "restore_file_order" in phases:
            target = work / "lat-restore-cairn-file"
            m = run(
                cairn.cmd(
                    "restore", f"latest:{dataset}", "--target", str(target), "--read-order", "file"
                ),
                cairn.env(),
            )
            _keep(rows, "cairn", "restore_file_order", m)
            shutil.rmtree(target, ignore_errors=True)
        for tool in (cairn, restic) if "dump" in phases else ():
            _keep(rows, tool.name, "dump", tool.dump(dataset))
    finally:
        if link is not None:
            link.__exit__(None, None, None)
    return {"rows": rows, "stored": stored}


def _keep(rows: dict[str, dict[str, float]], name: str, phase: str, m: Measurement) -> None:
    rows[name][phase] = m.wall
    rows[name][f"{phase}_rss"] = m.max_rss_mib
    print(f"  {name:6} {phase:18} {m.wall:7.2f}s  rss {m.max_rss_mib:6.1f} MiB", flush=True)


def latency_run(args: argparse.Namespace) -> dict[str, object]:
    tools.ensure_installed()
    tools.byte_compile_cairn()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / "lat-dataset"
    _make_dataset(dataset, args.size)
    links = [tuple(float(x) for x in spec.split(":")) for spec in args.links.split(",")]
    phases = tuple(p for p in args.phases.split(",") if p)
    if unknown := set(phases) - set(PHASES):
        raise SystemExit(f"unknown phases {sorted(unknown)}: choose from {', '.join(PHASES)}")
    results: dict[str, list[dict[str, object]]] = {}
    server: s3server.SeaweedServer | s3cluster.SeaweedCluster
    if args.cluster:
        cluster_dir = work / "lat-cluster"
        shutil.rmtree(cluster_dir, ignore_errors=True)
        cluster_dir.mkdir()
        server = s3cluster.start(cluster_dir)
    else:
        server = s3server.start()
    try:
        for r in range(args.runs):
            for rtt, mbit in links:
                key = f"{rtt:g}:{mbit:g}"
                print(f"run {r + 1}/{args.runs}: rtt {rtt:g} ms, {mbit:g} Mbit/s", flush=True)
                results.setdefault(key, []).append(
                    _one_link(
                        work, dataset, server, args.size, rtt, mbit, r, args.memory_limit, phases
                    )
                )
    finally:
        server.stop()
    table = _table(results) + "\n\n" + _memory_table(results, args.memory_limit)
    if "changed" in phases:
        table += "\n\n" + _backups_table(results)
    if "first" in phases:
        table += "\n\n" + _upload_table(results)
    if "dump" in phases:
        table += "\n\n" + _dump_table(results)
    return {"size": args.size, "runs": args.runs, "links": results, "table": table}


def _med(runs: list[dict[str, object]], tool: str, phase: str) -> float:
    """The median over the runs (NaN for a phase not run: shown as ``-``)."""
    got = [r["rows"][tool].get(phase) for r in runs]  # type: ignore[index]
    return median([g for g in got if g is not None]) if None not in got else math.nan


def _link_use(runs: list[dict[str, object]], tool: str, took: float, mbit: float) -> str:
    """The share of the link a read of the whole repository in ``took`` seconds used."""
    if not mbit or math.isnan(took):
        return "-"
    stored = median([r["stored"][tool] for r in runs])  # type: ignore[index]
    return f"{stored * 8 / took / (mbit * 1e6):.0%}"


def _dump_table(results: dict[str, list[dict[str, object]]]) -> str:
    """The whole dataset dumped as a tar stream (to /dev/null), cairn / restic."""
    lines = [
        "| link | dump cairn / restic (s) | cairn/restic | link used, cairn / restic "
        "| peak RSS cairn / restic (MiB) |",
        "|---|---|---|---|---|",
    ]
    for key, runs in results.items():
        rtt, mbit = (float(x) for x in key.split(":"))
        c, r = _med(runs, "cairn", "dump"), _med(runs, "restic", "dump")

        name = _link_name(rtt, mbit)
        lines.append(
            f"| {name} | {_s(c)} / {_s(r)} | **{_s(c / r, '.2f')}** "
            f"| {_link_use(runs, 'cairn', c, mbit)} / {_link_use(runs, 'restic', r, mbit)} "
            f"| {_s(_med(runs, 'cairn', 'dump_rss'), '.0f')} "
            f"/ {_s(_med(runs, 'restic', 'dump_rss'), '.0f')} |"
        )
    return "\n".join(lines)


def _backups_table(results: dict[str, list[dict[str, object]]]) -> str:
    """The three backups over each link, cairn / restic and the ratio."""
    lines = [
        "| link | first backup cairn / restic (s) | ratio | unchanged | ratio "
        "| a day's changes | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, runs in results.items():
        rtt, mbit = (float(x) for x in key.split(":"))
        name = _link_name(rtt, mbit)
        cells = []
        for phase in ("first", "unchanged", "changed"):
            c, r = _med(runs, "cairn", phase), _med(runs, "restic", phase)
            cells.append(f"{_s(c, '.2f')} / {_s(r, '.2f')} | **{_s(c / r, '.2f')}**")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _upload_table(results: dict[str, list[dict[str, object]]]) -> str:
    """The first backup over each shaped link: the bytes it sent (everything that crossed the
    link upstream: bodies, headers, requests) and the share of the link's rate it used."""
    lines = [
        "| link | first backup: sent cairn / restic (MiB) | cairn/restic sent "
        "| link used, cairn / restic |",
        "|---|---|---|---|",
    ]
    for key, runs in results.items():
        rtt, mbit = (float(x) for x in key.split(":"))
        if not mbit:
            continue  # straight to the server: nothing counts the bytes
        sent = {t: _med(runs, t, "first_sent") for t in ("cairn", "restic")}
        took = {t: _med(runs, t, "first") for t in ("cairn", "restic")}
        use = {t: f"{sent[t] * 8 / took[t] / (mbit * 1e6):.0%}" for t in sent}
        lines.append(
            f"| {rtt:g} ms, {mbit:g} Mbit/s | {_s(sent['cairn'] / 2**20)} / "
            f"{_s(sent['restic'] / 2**20)} | **{_s(sent['cairn'] / sent['restic'], '.3f')}** "
            f"| {use['cairn']} / {use['restic']} |"
        )
    return "\n".join(lines)


def _memory_table(results: dict[str, list[dict[str, object]]], limit: str | None) -> str:
    """Peak RSS of every phase, cairn / restic (MiB), and the limited first backup."""
    lines = [
        "| link | first backup | unchanged | restore |"
        + (
            f" first backup, cairn --memory-limit {limit} (s, MiB) | any command (MiB) |"
            if limit
            else ""
        ),
        "|---|---|---|---|" + ("---|---|" if limit else ""),
    ]
    for key, runs in results.items():

        def med(tool: str, phase: str, runs: list[dict[str, object]] = runs) -> float:
            return _med(runs, tool, phase)

        cells = [
            f"{_s(med('cairn', p + '_rss'), '.0f')} / {_s(med('restic', p + '_rss'), '.0f')}"
            for p in ("first", "unchanged", "restore")
        ]
        if limit:
            cells.append(
                f"{med('cairn', 'first_limited'):.1f}, {med('cairn', 'first_limited_rss'):.0f}"
            )
            cells.append(f"{med('cairn', 'baseline_rss'):.0f}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _table(results: dict[str, list[dict[str, object]]]) -> str:
    lines = [
        "| link | first backup cairn / restic (s) | unchanged | restore | cairn/restic restore "
        "| restore, cairn file by file (s) | link used by the restore, cairn / restic "
        "| restore peak RSS cairn / restic (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, runs in results.items():
        rtt, mbit = (float(x) for x in key.split(":"))

        def med(tool: str, phase: str, runs: list[dict[str, object]] = runs) -> float:
            return _med(runs, tool, phase)

        def used(tool: str, runs: list[dict[str, object]] = runs, mbit: float = mbit) -> str:
            return _link_use(runs, tool, _med(runs, tool, "restore"), mbit)

        name = _link_name(rtt, mbit)
        c, r = "cairn", "restic"
        lines.append(
            f"| {name} | {_s(med(c, 'first'))} / {_s(med(r, 'first'))} "
            f"| {_s(med(c, 'unchanged'))} / {_s(med(r, 'unchanged'))} "
            f"| {_s(med(c, 'restore'))} / {_s(med(r, 'restore'))} "
            f"| **{_s(med(c, 'restore') / med(r, 'restore'), '.2f')}** "
            f"| {_s(med(c, 'restore_file_order'))} "
            f"| {used(c)} / {used(r)} "
            f"| {_s(med(c, 'restore_rss'), '.0f')} / {_s(med(r, 'restore_rss'), '.0f')} |"
        )
    return "\n".join(lines)


def _link_name(rtt: float, mbit: float) -> str:
    return "loopback, unshaped" if not (rtt or mbit) else f"{rtt:g} ms, {mbit:g} Mbit/s"


def _s(value: float, spec: str = ".1f") -> str:
    """``value`` for the table: ``-`` for a phase that was not run."""
    return "-" if math.isnan(value) else format(value, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="256M")
    ap.add_argument("--links", default="0:0,20:100,80:100", help="RTT_MS:MBIT,...")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument(
        "--phases", default=",".join(PHASES), help=f"some of {','.join(PHASES)} (default: all)"
    )
    ap.add_argument("--workdir", default="/tmp/cairn-bench")
    ap.add_argument(
        "--cluster", action="store_true", help="the SeaweedFS cluster, not one weed process"
    )
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument(
        "--memory-limit", default=None, help="also a first backup with this --memory-limit"
    )
    args = ap.parse_args()
    result = latency_run(args)
    print(result["table"])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
