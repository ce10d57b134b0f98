"""Where a first backup's time over a shaped link goes: the link's timeline, from the shaping
proxy's log of every chunk it carried (``bench.shape_proxy``, ``log=``).

    python -m bench.link_trace [--size 256M] [--link 80:100] [--runs 3] [--cluster]
                               [--tools cairn,restic] [--baseline /path/to/other/src]
                               [--cairn-args "--connections 8"] [--init-args "--pack-size 16M"]
                               [--load 2]

Each run backs the benchmark dataset up into a fresh repository with each tool in turn (the
order rotates from run to run), and splits the backup's wall time into:

- ``start``: from the process's start to the first byte of a data pack's body on the link
  (the interpreter, opening the repository, filling the first pack, its PUT's round trips);
- ``busy``: the link carrying bytes upstream, between the first and the last data byte;
- idle between them, by what the uploads were doing: ``no PUT``: no data pack's PUT in flight
  (the packs were not ready: the CPU); ``body``: a PUT in flight whose body has not all gone
  (the sender was slow, or a PUT waits for ``100 Continue``; ``body, proxy late``: the part of
  it when the proxy held a chunk that had crossed the delay: the proxy, not the sender, was
  late); ``answer``: PUTs in flight whose
  bodies have all crossed, waiting for the store's answer;
- ``answer tail``: from the last data byte on the link to the last data pack's answer;
- ``end``: from there to the process's end (the index, the snapshot, the lock's removal and
  the process's exit);
- ``one body``: the time between the first and the last data byte when one data pack's body
  alone was being sent, and ``one body idle`` the link's idle time in it.

With ``--baseline``, cairn from that source tree (``bench.tools.CairnAt``) runs too, in the
same rotation, for a before/after in one run. ``--load N`` runs N busy loops meanwhile, for a
machine shared with other work; ``--catch-up`` has the proxy count the link's time from when a
chunk was due when it ran late itself (``bench.shape_proxy``), as a link of its own would. The
CPU the store's processes took during each
backup is read from ``/proc``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench import tools
from bench.latency import _make_dataset, _via
from bench.measure import median
from bench.shape_proxy import ShapedLink

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3cluster, s3server  # noqa: E402  (the SeaweedFS launchers the tests use)

_REQUEST = re.compile(rb"^(PUT|GET|POST|DELETE|HEAD) (\S+) HTTP/1\.1\r\n")
_RESPONSE = re.compile(rb"^HTTP/1\.1 (\d{3})")
# a data pack: cairn's data/xx/<64 hex>, restic's data/xx/<64 hex>
_PACK = re.compile(rb"/data/[0-9a-f]{2}/[0-9a-f]{64}")
_TICK = 0.001  # the timeline's resolution


@dataclass
class Request:
    conn: int
    method: str
    path: str
    sent: float  # the client sent its first bytes (the proxy read them)
    body: int = 0  # bytes after the header chunk
    body_first: float = 0.0  # the first and last of them delivered to the store
    body_last: float = 0.0
    status: int = 0
    answered: float = 0.0  # the store's final answer reached the client
    pack: bool = False


@dataclass
class Trace:
    tool: str
    wall: float
    up: int
    rate: float
    delay: float  # one way
    requests: list[Request]
    parts: dict[str, float] = field(default_factory=dict)
    store_cpu: float = 0.0
    tool_cpu: float = 0.0

    @property
    def link_used(self) -> float:
        return self.up * 8 / self.rate / self.wall


def _requests(log: list[tuple[int, int, float, float, int, bytes]], t0: float) -> list[Request]:
    """The HTTP requests in the proxy's log, times from ``t0``."""
    open_: dict[int, Request] = {}
    done: list[Request] = []
    for conn, way, read_at, at, n, head in sorted(log, key=lambda e: e[3]):
        if way == 0:
            m = _REQUEST.match(head)
            if m is not None:
                req = Request(conn, m[1].decode(), m[2].decode(), read_at - t0)
                req.pack = req.method == "PUT" and _PACK.search(m[2]) is not None
                open_[conn] = req
                continue
            req = open_.get(conn)
            if req is None:
                continue
            if not req.body:
                req.body_first = at - t0
            req.body += n
            req.body_last = at - t0
        else:
            m = _RESPONSE.match(head)
            req = open_.get(conn)
            if m is None or req is None or m[1] == b"100":
                continue
            req.status, req.answered = int(m[1]), at - t0
            done.append(open_.pop(conn))
    return sorted(done, key=lambda r: r.sent)


def _busy(
    log: list[tuple[int, int, float, float, int, bytes]], t0: float, rate: float
) -> list[tuple[float, float]]:
    """When the link carried bytes upstream: each chunk occupies its serialisation time before
    its delivery."""
    return [(at - t0 - n * 8 / rate, at - t0) for _, way, _, at, n, _ in log if way == 0]


def _ready(
    log: list[tuple[int, int, float, float, int, bytes]], t0: float, trace: Trace
) -> list[tuple[float, float]]:
    """When a chunk upstream had crossed the delay and waited for the proxy to put it on the
    link: the proxy, not the sender, was late then."""
    return [
        (read_at - t0 + trace.delay, at - t0 - n * 8 / trace.rate)
        for _, way, read_at, at, n, _ in log
        if way == 0
    ]


def _split(
    trace: Trace, busy: list[tuple[float, float]], ready: list[tuple[float, float]]
) -> dict[str, float]:
    packs = [r for r in trace.requests if r.pack and r.body]
    if not packs:
        return {}
    first = min(r.body_first for r in packs)
    last = max(r.body_last for r in packs)
    last_answer = max(r.answered for r in packs)
    ticks = int((last - first) / _TICK) + 1
    on = bytearray(ticks)
    for a, b in busy:
        lo, hi = max(0, int((a - first) / _TICK)), min(ticks, int((b - first) / _TICK) + 1)
        if hi > lo:
            on[lo:hi] = b"\x01" * (hi - lo)
    waiting = bytearray(ticks)
    for a, b in ready:
        lo, hi = max(0, int((a - first) / _TICK) + 1), min(ticks, int((b - first) / _TICK))
        if hi > lo:
            waiting[lo:hi] = b"\x01" * (hi - lo)
    parts = {"start": first, "busy": 0.0, "no PUT": 0.0, "body": 0.0, "answer": 0.0}
    parts["body, proxy late"] = 0.0
    alone = {"busy": 0.0, "idle": 0.0}  # one body left to send
    for i in range(ticks):
        t = first + (i + 0.5) * _TICK
        flying = [r for r in packs if r.sent <= t < r.answered]
        if sum(1 for r in flying if r.body_first <= t < r.body_last) == 1:
            alone["busy" if on[i] else "idle"] += _TICK
        if on[i]:
            parts["busy"] += _TICK
            continue
        if not flying:
            parts["no PUT"] += _TICK
        elif any(t < r.body_last for r in flying):
            parts["body"] += _TICK
            parts["body, proxy late"] += _TICK if waiting[i] else 0.0
        else:
            parts["answer"] += _TICK
    parts["answer tail"] = last_answer - last
    parts["end"] = trace.wall - last_answer
    parts["one body"] = alone["busy"] + alone["idle"]
    parts["one body idle"] = alone["idle"]
    return parts


def _cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system, its own), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _store_pids(server: object) -> list[int]:
    services = getattr(server, "services", None)
    if services is not None:
        return [s.proc.pid for s in services.values() if s.proc is not None]
    proc = getattr(server, "proc", None)
    return [proc.pid] if proc is not None else []


def _one(
    tool: tools.Tool,
    dataset: Path,
    link: ShapedLink,
    log: list[tuple[int, int, float, float, int, bytes]],
    rate: float,
    delay: float,
    store: list[int],
    cairn_args: list[str],
) -> Trace:
    tool.reset()
    tool.init()
    if isinstance(tool, tools.Cairn):
        cmd = tool.cmd("backup", str(dataset), "--json", *cairn_args)
    else:
        cmd = ["restic", "backup", "--json", str(dataset)]
    log.clear()
    up = link.bytes_up
    cpu0 = sum(_cpu_seconds(p) for p in store)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **tool.env()}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tool.name} failed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    time.sleep(0.05)  # the proxy's last deliveries
    events = list(log)
    trace = Trace(tool.name, wall, link.bytes_up - up, rate, delay, _requests(events, t0))
    trace.store_cpu = sum(_cpu_seconds(p) for p in store) - cpu0
    trace.tool_cpu = ru.ru_utime + ru.ru_stime
    trace.parts = _split(trace, _busy(events, t0, rate), _ready(events, t0, trace))
    return trace


def _describe(trace: Trace) -> str:
    packs = [r for r in trace.requests if r.pack]
    lines = [
        f"  {trace.tool}: {trace.wall:.2f} s, link used {trace.link_used:.0%}, "
        f"CPU {trace.tool_cpu:.1f} s, store CPU {trace.store_cpu:.1f} s, "
        f"load {os.getloadavg()[0]:.1f}",
        "    " + ", ".join(f"{k} {v:.2f}" for k, v in trace.parts.items()),
        "    data PUTs (MiB: sent, body first-last, answered +ms after the last byte):",
    ]
    for r in packs:
        lines.append(
            f"      {r.body / 2**20:5.1f}  {r.sent:6.2f}  {r.body_first:6.2f}-{r.body_last:6.2f}"
            f"  +{(r.answered - r.body_last) * 1000:4.0f}"
        )
    last_put = max((p.sent for p in packs), default=0.0)
    tail = [r for r in trace.requests if not r.pack and r.sent > last_put]
    lines.append(
        "    after the last data PUT: "
        + ", ".join(
            f"{r.method} {r.path.rsplit('/', 2)[-2]}/ {r.sent:.2f}-{r.answered:.2f}" for r in tail
        )
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="256M")
    ap.add_argument("--link", default="80:100", help="RTT_MS:MBIT")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cluster", action="store_true")
    ap.add_argument("--tools", default="cairn,restic")
    ap.add_argument("--baseline", default=None, help="also cairn from this source tree")
    ap.add_argument("--cairn-args", default="", help="more arguments to cairn backup")
    ap.add_argument("--init-args", default="", help="more arguments to cairn init")
    ap.add_argument("--workdir", default="/tmp/cairn-bench")
    ap.add_argument(
        "--load", type=int, default=0, help="this many busy loops run meanwhile (other work)"
    )
    ap.add_argument(
        "--catch-up",
        action="store_true",
        help="the proxy's link time counts from when a chunk was due, should the proxy run late",
    )
    args = ap.parse_args()
    tools.ensure_installed()
    tools.byte_compile_cairn()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / "trace-dataset"
    if not dataset.exists():
        _make_dataset(dataset, args.size)
    rtt, mbit = (float(x) for x in args.link.split(":"))
    rate = mbit * 1e6
    server: s3server.SeaweedServer | s3cluster.SeaweedCluster
    if args.cluster:
        cluster_dir = work / "trace-cluster"
        shutil.rmtree(cluster_dir, ignore_errors=True)
        cluster_dir.mkdir()
        server = s3cluster.start(cluster_dir)
    else:
        server = s3server.start()
    log: list[tuple[int, int, float, float, int, bytes]] = []
    results: dict[str, list[Trace]] = {}
    init_args = shlex.split(args.init_args)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        with ShapedLink(
            urlsplit(server.endpoint).port or 0, rtt, mbit, log=log, catch_up=args.catch_up
        ) as link:
            for r in range(args.runs):
                made: list[tools.Tool] = []
                for name in args.tools.split(","):
                    url = server.url(f"trace-{name}-{r}")
                    if name == "restic":
                        url = f"s3:{server.endpoint}/{s3server.BUCKET}/trace-restic-{r}"
                    kind = tools.Restic if name == "restic" else tools.Cairn
                    made.append(kind(work, url=_via(url, link.port), extra_env=server.env()))
                if args.baseline:
                    base = tools.CairnAt(work, Path(args.baseline))
                    base.url = _via(server.url(f"trace-base-{r}"), link.port)
                    base.extra_env = server.env()
                    made.append(base)
                for tool in made:
                    if isinstance(tool, tools.Cairn) and init_args:
                        tool.init = (  # type: ignore[method-assign]
                            lambda t=tool: subprocess.run(
                                t.cmd("init", *init_args),
                                env={**os.environ, **t.env()},
                                check=True,
                                stdout=subprocess.DEVNULL,
                            )
                        )
                shift = r % len(made)
                for tool in made[shift:] + made[:shift]:
                    cargs = shlex.split(args.cairn_args) if tool.name == "cairn" else []
                    trace = _one(
                        tool, dataset, link, log, rate, rtt / 2000, _store_pids(server), cargs
                    )
                    results.setdefault(tool.name, []).append(trace)
                    print(f"run {r + 1}/{args.runs}", flush=True)
                    print(_describe(trace), flush=True)
    finally:
        for p in busy:
            p.kill()
            p.wait()
        server.stop()
    keys = ["start", "busy", "no PUT", "body", "body, proxy late", "answer", "answer tail"]
    keys += ["end", "one body", "one body idle"]
    store = "cluster" if args.cluster else "one process"
    late = ", the proxy catching up" if args.catch_up else ""
    print(f"\nmedians of {args.runs} ({args.link}, {store}, {args.load} busy loops{late})")
    print("| tool | wall | link used | " + " | ".join(keys) + " | store CPU |")
    print("|---|---|---|" + "---|" * len(keys) + "---|")
    for name, traces in results.items():
        cells = [f"{median([t.parts.get(k, 0.0) for t in traces]):.2f}" for k in keys]
        print(
            f"| {name} | {median([t.wall for t in traces]):.2f} "
            f"| {median([t.link_used for t in traces]):.0%} | "
            + " | ".join(cells)
            + f" | {median([t.store_cpu for t in traces]):.1f} |"
        )


if __name__ == "__main__":
    main()
