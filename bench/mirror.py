"""cairn mirror against rclone sync, on the same SeaweedFS, in one run:

    python -m bench.mirror --size 1G --workdir /tmp/cairn-bench-mirror

Times are measured straight to SeaweedFS. Each phase then runs once more through a counting
HTTP proxy (bench/http_count.py), so that both tools' requests (by method) and body bytes are
counted the same way; cairn's own ``--json`` counts are kept beside as a cross-check. rclone
is Debian's, with an S3 remote configured from the environment, its default transfers and
checkers, and ``--metadata``; cairn runs at its defaults (8 uploads in flight on S3) with
``--delete``, as ``rclone sync`` deletes.

Phases, each tool on its own prefix, alternating which tool goes first:

- first: the dataset into a fresh prefix (cairn: a fresh cache directory as well);
- unchanged: the same again;
- changed: one small file rewritten;
- add-300M: a new 300 MiB file (not a target; it sets up the rename);
- rename: that file renamed;
- pull: the prefix into an empty directory; unchanged-pull: the same again.

first and pull are timed ``--full-runs`` times (a fresh prefix, a fresh directory each), the
cheap phases ``--runs`` times; the times are medians. add-300M runs once, counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from bench import tools
from bench.http_count import CountingProxy, Counts
from bench.measure import Measurement, median, run
from bench.verify import fingerprint, same_tree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3server  # noqa: E402  (the same SeaweedFS launcher the tests use)

MAKE_DATASET = ROOT.parent / "shared" / "bench" / "make_dataset.py"
BIG = 300 << 20
REMOTE = "BENCHS3"


@dataclass
class Sample:
    wall: float
    cpu: float
    counts: Counts
    server_cpu: float = 0.0  # SeaweedFS's CPU seconds meanwhile
    own: dict[str, object] | None = None  # cairn's --json store counts
    counted: bool = False  # through the counting proxy (its counts), else straight (its time)


@dataclass
class Phase:
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def add(self, tool: str, s: Sample) -> None:
        self.samples.setdefault(tool, []).append(s)


class MirrorTool(ABC):
    """A tool that pushes a directory to a prefix of the bucket and pulls it back."""

    name = ""

    def __init__(self, work: Path, endpoint: str, env: dict[str, str]) -> None:
        self.work = work
        self.endpoint = endpoint
        self.base_env = env

    @abstractmethod
    def push(self, src: Path, prefix: str) -> Measurement: ...

    @abstractmethod
    def pull(self, prefix: str, target: Path) -> Measurement: ...


class CairnMirror(MirrorTool):
    name = "cairn"

    def __init__(self, work: Path, endpoint: str, env: dict[str, str]) -> None:
        super().__init__(work, endpoint, env)
        self.cache = work / "cache-cairn-0"

    def fresh_cache(self, n: int) -> None:
        self.cache = self.work / f"cache-cairn-{n}"
        shutil.rmtree(self.cache, ignore_errors=True)

    def env(self) -> dict[str, str]:
        return {
            **self.base_env,
            "CAIRN_CACHE_DIR": str(self.cache),
            # the caller's path after cairn's own (where a dependency may be installed)
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p
            ),
        }

    def url(self, prefix: str) -> str:
        return f"s3:{self.endpoint}/{s3server.BUCKET}/{prefix}"

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cairn", "mirror", *args]

    def init(self, prefix: str) -> Measurement:
        return run(self.cmd("init", self.url(prefix)), self.env())

    def push(self, src: Path, prefix: str) -> Measurement:
        return run(self.cmd("push", str(src), self.url(prefix), "--delete", "--json"), self.env())

    def pull(self, prefix: str, target: Path) -> Measurement:
        return run(self.cmd("pull", self.url(prefix), str(target), "--json"), self.env())


class Rclone(MirrorTool):
    name = "rclone"

    def env(self) -> dict[str, str]:
        r = f"RCLONE_CONFIG_{REMOTE}_"
        return {
            "RCLONE_CONFIG": str(self.work / "rclone.conf"),  # absent: the remote is all env
            r + "TYPE": "s3",
            r + "PROVIDER": "Other",
            r + "ENDPOINT": self.endpoint,
            r + "ACCESS_KEY_ID": s3server.ACCESS_KEY,
            r + "SECRET_ACCESS_KEY": s3server.SECRET_KEY,
            r + "REGION": "us-east-1",
            r + "FORCE_PATH_STYLE": "true",
            # the AWS SDK in rclone cannot use a custom CA bundle with rclone's own transport,
            # and the endpoint is plain HTTP anyway
            "AWS_CA_BUNDLE": "",
        }

    def remote(self, prefix: str) -> str:
        return f"{REMOTE.lower()}:{s3server.BUCKET}/{prefix}"

    def push(self, src: Path, prefix: str) -> Measurement:
        return run(["rclone", "sync", str(src), self.remote(prefix), "--metadata"], self.env())

    def pull(self, prefix: str, target: Path) -> Measurement:
        return run(["rclone", "sync", self.remote(prefix), str(target), "--metadata"], self.env())


def _own_counts(m: Measurement) -> dict[str, object] | None:
    try:
        doc = json.loads(m.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    store = doc.get("store") if isinstance(doc, dict) else None
    return store if isinstance(store, dict) else None


def _cpu_of(pid: int) -> float:
    """The CPU seconds of process ``pid`` so far (its own and its waited-for children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _measure(
    proxy: CountingProxy, tool: MirrorTool, action, log: Path, title: str, server_pid: int = 0
) -> Sample:  # type: ignore[no-untyped-def]
    counted = tool.endpoint == proxy.endpoint
    os.sync()
    proxy.take()
    proxy.log = []
    server_before = _cpu_of(server_pid) if server_pid else 0.0
    m = action()
    server_cpu = (_cpu_of(server_pid) - server_before) if server_pid else 0.0
    counts = proxy.take()
    with open(log, "a") as f:
        f.write(f"## {title} {tool.name}\n")
        f.writelines(line + "\n" for line in proxy.log)
    proxy.log = None
    own = _own_counts(m) if tool.name == "cairn" else None
    return Sample(m.wall, m.cpu, counts, own=own, counted=counted, server_cpu=server_cpu)


def _show(phase: str, tool: str, s: Sample) -> None:
    c = s.counts
    reqs = " ".join(f"{k}={v}" for k, v in sorted(c.requests.items()))
    print(
        f"  {phase:15} {tool:6} {'counted' if s.counted else 'timed':7} {s.wall:7.2f}s cpu {s.cpu:6.2f}s server cpu {s.server_cpu:6.2f}s  {c.total():6} req ({reqs})"
        f"  up {c.body_up / 2**20:8.2f} MiB down {c.body_down / 2**20:8.2f} MiB"
        + (f"  own {s.own}" if s.own else ""),
        flush=True,
    )


def _orders(tools_: list[MirrorTool], n: int) -> list[MirrorTool]:
    return tools_ if n % 2 == 0 else tools_[::-1]


def _write_big(path: Path) -> None:
    with open(path, "wb") as f:
        for _ in range(BIG >> 20):
            f.write(os.urandom(1 << 20))


def _change_one(dataset: Path, n: int) -> Path:
    """Rewrites the n-th small source file (sorted), a little longer than it was."""
    files = sorted(p for p in (dataset / "src").rglob("*.py") if p.is_file())
    path = files[(n * 7919) % len(files)]
    path.write_bytes(path.read_bytes() + f"# changed {n}\n".encode())
    return path


def mirror_run(args: argparse.Namespace) -> dict[str, object]:
    tools.byte_compile_cairn()
    work = Path(args.workdir)
    dataset = work / "dataset"
    subprocess.run(
        [sys.executable, str(MAKE_DATASET), str(dataset), "--size", args.size],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    run("tar -cf - . | cat > /dev/null", cwd=str(dataset))  # into the page cache
    phases: dict[str, Phase] = {}
    (work / "requests.log").unlink(missing_ok=True)
    names = [dataset / "media" / "big-a.bin", dataset / "media" / "big-b.bin"]
    server = s3server.start()
    host, port = server.endpoint.removeprefix("http://").split(":")
    proxy = CountingProxy((host, int(port)))
    try:
        env = server.env()
        cairn = CairnMirror(work, server.endpoint, env)
        rclone = Rclone(work, server.endpoint, env)
        both: list[MirrorTool] = [cairn, rclone]

        def step(phase: str, n: int, action, counted: bool = False) -> None:  # type: ignore[no-untyped-def]
            for tool in _orders(both, n):
                tool.endpoint = proxy.endpoint if counted else server.endpoint
                s = _measure(
                    proxy,
                    tool,
                    lambda t=tool: action(t),
                    work / "requests.log",
                    f"{phase} {n}",
                    server.proc.pid,
                )
                phases.setdefault(phase, Phase()).add(tool.name, s)
                _show(phase, tool.name, s)

        # every phase: --runs (or --full-runs) timed runs straight to the server, then one
        # more through the counting proxy for its requests and bytes (the proxy runs here, on
        # the same cores as the tools and the server: it stays out of the timed runs)
        prefix = ""
        for n in range(args.full_runs + 1):
            counted = n == args.full_runs
            prefix = "counted" if counted else f"run-{n}"
            cairn.fresh_cache(n)
            cairn.endpoint = server.endpoint
            cairn.init(f"cairn-{prefix}")
            step("first", n, lambda t, p=prefix: t.push(dataset, f"{t.name}-{p}"), counted)
        rclone_problems: list[str] = []
        if args.first_only:
            return _report(args, dataset, phases, rclone_problems)
        # the later phases go on from the counted prefix, whose cache is the last one made

        def push(t: MirrorTool) -> Measurement:
            return t.push(dataset, f"{t.name}-{prefix}")

        for n in range(args.runs + 1):
            step("unchanged", n, push, n == args.runs)
        for n in range(args.runs + 1):
            _change_one(dataset, n)
            step("changed", n, push, n == args.runs)
        _write_big(names[0])
        step("add-300M", 0, push, True)
        for n in range(args.runs + 1):
            names[n % 2].rename(names[(n + 1) % 2])
            step("rename", n, push, n == args.runs)
        expected = fingerprint(dataset)
        problems: list[str] = []
        for n in range(args.full_runs + 1):
            targets = {t.name: work / f"pull-{t.name}-{n}" for t in both}
            for target in targets.values():
                shutil.rmtree(target, ignore_errors=True)
            step(
                "pull",
                n,
                lambda t, ts=targets: t.pull(f"{t.name}-{prefix}", ts[t.name]),
                n == args.full_runs,
            )
            problems = same_tree(expected, targets["cairn"])
            if problems:
                raise SystemExit(f"cairn's pull differs from the source: {problems[:10]}")
        last = args.full_runs
        for n in range(args.runs + 1):
            step(
                "unchanged-pull",
                n,
                lambda t: t.pull(f"{t.name}-{prefix}", work / f"pull-{t.name}-{last}"),
                n == args.runs,
            )
        rclone_pull = work / f"pull-rclone-{last}"
        rclone_problems = same_tree(expected, rclone_pull)
    finally:
        proxy.close()
        server.stop()
        if not args.keep:
            for p in work.glob("pull-*"):
                shutil.rmtree(p, ignore_errors=True)
            for p in work.glob("cache-cairn-*"):
                shutil.rmtree(p, ignore_errors=True)
            for p in names:
                p.unlink(missing_ok=True)
    return _report(args, dataset, phases, rclone_problems)


def _report(
    args: argparse.Namespace, dataset: Path, phases: dict[str, Phase], rclone_problems: list[str]
) -> dict[str, object]:
    return {
        "machine": f"{platform.node()} {os.cpu_count()} cpu, {platform.python_version()}",
        "rclone": run(["rclone", "version"]).stdout.decode().splitlines()[0],
        "size": args.size,
        "runs": args.runs,
        "full_runs": args.full_runs,
        "dataset_bytes": int(run(["du", "-sb", "--apparent-size", str(dataset)]).stdout.split()[0]),
        "rclone_pull_differs": rclone_problems[:20],
        "rclone_pull_differences": len(rclone_problems),
        "phases": {name: _summary(ph) for name, ph in phases.items()},
    }


def _summary(ph: Phase) -> dict[str, object]:
    out: dict[str, object] = {}
    for tool, samples in ph.samples.items():
        timed = [s for s in samples if not s.counted] or samples
        c = next(s for s in samples if s.counted)
        out[tool] = {
            "time": median([s.wall for s in timed]),
            "times": [round(s.wall, 3) for s in timed],
            "cpu": median([s.cpu for s in timed]),
            "cpus": [round(s.cpu, 2) for s in timed],
            "server_cpus": [round(s.server_cpu, 2) for s in timed],
            "time_counted": round(c.wall, 3),
            "requests": c.counts.total(),
            "by_method": c.counts.as_dict()["requests"],
            "statuses": c.counts.as_dict()["statuses"],
            "bytes_up": c.counts.body_up,
            "bytes_down": c.counts.body_down,
            "own": c.own,
        }
    return out


TARGETS = {
    # phase: (what, check(cairn, rclone) -> bool)
    "first": (
        "time <= 1.0x rclone, requests <= rclone's",
        lambda c, r: c["time"] <= r["time"] and c["requests"] <= r["requests"],
    ),
    "unchanged": (
        "time <= 0.2x rclone, <= 2 requests",
        lambda c, r: c["time"] <= 0.2 * r["time"] and c["requests"] <= 2,
    ),
    "changed": ("<= 5 requests", lambda c, r: c["requests"] <= 5),
    "rename": (
        "the file's bytes not uploaded (< 1 MiB up)",
        lambda c, r: c["bytes_up"] < 2**20,
    ),
}


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}" if n >= 2**20 / 10 or n == 0 else f"{n / 2**10:.1f} KiB"


def _methods(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def table(report: dict[str, object]) -> str:
    phases = report["phases"]  # type: ignore[index]
    lines = [
        "| phase | cairn s | rclone s | cairn / rclone | cairn requests | rclone requests "
        "| cairn MiB up / down | rclone MiB up / down | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, ph in phases.items():  # type: ignore[union-attr]
        c, r = ph["cairn"], ph["rclone"]
        what, check = TARGETS.get(name, ("", None))
        met = ("yes" if check(c, r) else "**no**") if check else ""
        lines.append(
            f"| {name} | {c['time']:.2f} | {r['time']:.2f} | {c['time'] / r['time']:.2f} "
            f"| {c['requests']:.0f} ({_methods(c['by_method'])}) "
            f"| {r['requests']:.0f} ({_methods(r['by_method'])}) "
            f"| {_mib(c['bytes_up'])} / {_mib(c['bytes_down'])} "
            f"| {_mib(r['bytes_up'])} / {_mib(r['bytes_down'])} | {what} | {met} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="1G")
    ap.add_argument("--runs", type=int, default=3, help="repeats of the cheap phases")
    ap.add_argument("--full-runs", type=int, default=3, help="repeats of first push and pull")
    ap.add_argument("--workdir", default="/tmp/cairn-bench-mirror")
    ap.add_argument("--keep", action="store_true", help="keep the pulled trees and caches")
    ap.add_argument(
        "--first-only", action="store_true", help="only the first push (timed and counted)"
    )
    ap.add_argument("--out", help="write the JSON report here")
    args = ap.parse_args(argv)
    tools.ensure_installed((("rclone", "rclone"),))
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    report = mirror_run(args)
    text = table(report)
    print(text)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
