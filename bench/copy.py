"""cairn copy against restic copy, from a local repository to SeaweedFS, in one run:

    python -m bench.copy --size 1G --runs 3 --workdir /work/cairn-bench-copy

Each tool first backs the dataset up into a local repository of its own (not timed). Then, per
run, alternating which tool goes first, each copies its repository into a fresh prefix of the
same SeaweedFS bucket:

- ``first``: every snapshot into a fresh destination made with a plain ``init`` (its own
  chunker and, for cairn, its own id key: every blob is read and given its new id);
- ``first-shared``: the same into a destination made with ``init --copy-chunker-params
  --from-repo`` (cairn: the same ids, blobs moved as stored);
- ``next-shared``: after a day's changes (make_dataset --mutate) backed up into both sources,
  the new snapshot into the ``first-shared`` destination.

Times are medians of the runs; peak RSS the largest. Both tools run at their defaults.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from abc import ABC, abstractmethod
from pathlib import Path

from bench import tools
from bench.measure import Measurement, median, run

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3server  # noqa: E402  (the same SeaweedFS launcher the tests use)

MAKE_DATASET = ROOT.parent / "shared" / "bench" / "make_dataset.py"
PHASES = ("first", "first-shared", "next-shared")


class Copier(ABC):
    """One tool's copy commands; the source is ``tool``'s local repository."""

    def __init__(self, tool: tools.Tool, env: dict[str, str]) -> None:
        self.tool = tool
        self.env = env

    @abstractmethod
    def init(self, url: str, shared: bool) -> None: ...

    @abstractmethod
    def copy(self, url: str) -> Measurement: ...


class CairnCopier(Copier):
    def _env(self) -> dict[str, str]:
        return {**self.tool.env(), **self.env, "CAIRN_FROM_PASSWORD": tools.PASSWORD}  # type: ignore[attr-defined]

    def init(self, url: str, shared: bool) -> None:
        extra = ["--copy-chunker-params", "--from-repo", str(self.tool.repo)] if shared else []
        run(self.tool.cmd("init", "-r", url, *extra), self._env())  # type: ignore[attr-defined]

    def copy(self, url: str) -> Measurement:
        cmd = self.tool.cmd("copy", "-r", url, "--from-repo", str(self.tool.repo), "--json")  # type: ignore[attr-defined]
        return run(cmd, self._env())


class ResticCopier(Copier):
    def _env(self) -> dict[str, str]:
        return {**self.tool.env(), **self.env, "RESTIC_FROM_PASSWORD": tools.PASSWORD}  # type: ignore[attr-defined]

    def init(self, url: str, shared: bool) -> None:
        extra = ["--copy-chunker-params", "--from-repo", str(self.tool.repo)] if shared else []
        run(["restic", "-r", url, "init", *extra], self._env())

    def copy(self, url: str) -> Measurement:
        return run(["restic", "-r", url, "copy", "--from-repo", str(self.tool.repo)], self._env())


def copy_run(args: argparse.Namespace) -> dict[str, object]:
    tools.ensure_installed()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / "dataset"
    make = [sys.executable, str(MAKE_DATASET), str(dataset), "--size", args.size]
    subprocess.run(make, check=True, stdout=subprocess.DEVNULL)
    cairn, restic = tools.Cairn(work), tools.Restic(work)
    for tool in (cairn, restic):
        tool.reset()
        tool.init()
        tool.backup(dataset)
    server = s3server.start()
    times: dict[str, dict[str, list[float]]] = {
        t: {p: [] for p in PHASES} for t in ("cairn", "restic")
    }
    rss: dict[str, dict[str, float]] = {t: dict.fromkeys(PHASES, 0.0) for t in times}
    counts: dict[str, object] = {}
    try:
        env = server.env()
        copiers = [CairnCopier(cairn, env), ResticCopier(restic, env)]
        for n in range(args.runs):
            order = copiers if n % 2 == 0 else copiers[::-1]
            for c in order:
                name = c.tool.name
                plain, shared = (server.url(f"copy-{name}-{n}-{k}") for k in ("plain", "shared"))
                c.init(plain, shared=False)
                m = c.copy(plain)
                _keep(times, rss, name, "first", m)
                if name == "cairn" and n == 0:
                    counts["first"] = json.loads(m.stdout)["source_requests"]
                c.init(shared, shared=True)
                _keep(times, rss, name, "first-shared", c.copy(shared))
            mutate = [*make, "--mutate", "--day", str(n + 1)]
            subprocess.run(mutate, check=True, stdout=subprocess.DEVNULL)
            for c in order:
                c.tool.backup(dataset)
            for c in order:
                m = c.copy(server.url(f"copy-{c.tool.name}-{n}-shared"))
                _keep(times, rss, c.tool.name, "next-shared", m)
                if c.tool.name == "cairn" and n == 0:
                    counts["next-shared"] = json.loads(m.stdout)
    finally:
        server.stop()
    med = {t: {p: median(v) for p, v in ph.items()} for t, ph in times.items()}
    return {"size": args.size, "runs": args.runs, "median_s": med, "peak_rss_mib": rss,
            "ratio": {p: med["cairn"][p] / med["restic"][p] for p in PHASES}, "cairn_counts": counts}  # fmt: skip


def _keep(times, rss, name: str, phase: str, m: Measurement) -> None:  # type: ignore[no-untyped-def]
    times[name][phase].append(m.wall)
    rss[name][phase] = max(rss[name][phase], m.max_rss_mib)
    print(
        f"{phase:13} {name:7} {m.wall:7.1f} s  cpu {m.cpu:6.1f} s  rss {m.max_rss_mib:6.0f} MiB",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1G")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workdir", default="/work/cairn-bench-copy")
    p.add_argument("--out", help="write the report as JSON here")
    args = p.parse_args(argv)
    report = copy_run(args)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
