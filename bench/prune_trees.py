"""What a daily prune that removes nothing costs on S3, against a daily backup: requests (GETs
above all: one per tree blob read alone, or one per tree pack) and wall time, on SeaweedFS
straight and behind a shaped link (``bench.shape_proxy``).

    python -m bench.prune_trees [--dirs 2000] [--days 7] [--links 0:0,20:100]
                                [--baseline SRC_DIR]

A tree of ``--dirs`` directories (three small files each) is backed up ``--days`` times, a
tenth of the directories changing every day, into a fresh repository per link; then a prune
is run, which removes nothing (no snapshot was forgotten). ``--baseline`` runs the same prune
with another source tree's cairn too (e.g. ``git worktree add /tmp/base HEAD~1``, then
``--baseline /tmp/base/src``). Every request is counted by a metering wrapper around the
backend (``cairn.app.context.stack_hooks``), opening the repository included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from bench.shape_proxy import ShapedLink

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3server  # noqa: E402  (the same SeaweedFS launcher the tests use)

PASSWORD = "benchmark password"
# runs ``cairn ARGS`` with every store metered; the counts and the wall time go to $COUNTS
DRIVER = """
import json, os, sys, time
from cairn.app.context import StackHooks, stack_hooks
from cairn.cli.main import main
from cairn.storage.metered import MeteredStorage
meters = []
def wrap(backend):
    meters.append(MeteredStorage(backend))
    return meters[-1]
t0 = time.monotonic()
with stack_hooks(StackHooks(wrappers=(wrap,))):
    code = main(sys.argv[1:])
wall = time.monotonic() - t0
usage = {}
for m in meters:
    for k, v in m.usage.as_dict().items():
        usage[k] = usage.get(k, 0) + v
with open(os.environ["COUNTS"], "w") as f:
    json.dump({"code": code, "wall": wall, "usage": usage}, f)
"""

# prints the number of tree packs and tree blobs of $CAIRN_REPOSITORY
TREES = """
import json, os
from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.repo import layout
from cairn.repo.repository import Repository
opts = StoreOptions()
storage, _ = wrap_backend(backend_for(os.environ["CAIRN_REPOSITORY"], opts), opts)
repo = Repository.open(storage, os.environ["CAIRN_PASSWORD"].encode())
repo.load_index()
packs = {p.id for p in repo.index.packs if p.blob_type == layout.TREE_BLOB}
blobs = sum(1 for b in repo.index.blob_ids() if repo.index.get(b).pack.id in packs)
print(json.dumps({"tree_packs": len(packs), "tree_blobs": blobs}))
"""


def make_tree(root: Path, dirs: int, day: int) -> None:
    """``dirs`` directories in groups of 100, three files each; on day ``day`` one file of
    every tenth directory (a different tenth each day) changes."""
    for i in range(dirs):
        d = root / f"g{i // 100:03}" / f"d{i:05}"
        d.mkdir(parents=True, exist_ok=True)
        for j in range(3):
            f = d / f"f{j}.txt"
            version = day if j == 0 and day and i % 10 == day % 10 else 0
            text = f"directory {i} file {j} version {version}\n"
            if not f.exists() or f.read_text() != text:
                f.write_text(text)


def cairn(src: Path, env: dict[str, str], *args: str) -> dict[str, object]:
    """``cairn ARGS`` with the cairn of ``src``: exit code, wall seconds, requests."""
    with tempfile.NamedTemporaryFile(suffix=".json") as counts:
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER, *args],
            env={**os.environ, **env, "PYTHONPATH": str(src), "COUNTS": counts.name},
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cairn {' '.join(args)}: {proc.stderr.decode()}")
        return json.loads(Path(counts.name).read_text())  # type: ignore[no-any-return]


def tree_counts(src: Path, env: dict[str, str]) -> dict[str, int]:
    """The tree packs and tree blobs of the repository."""
    proc = subprocess.run(
        [sys.executable, "-c", TREES],
        env={**os.environ, **env, "PYTHONPATH": str(src)},
        capture_output=True,
        check=True,
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def one_link(
    server: s3server.SeaweedServer, work: Path, args: argparse.Namespace, rtt: float, mbit: float
) -> dict[str, object]:
    prefix = f"prune-trees-{int(rtt)}ms-{os.urandom(3).hex()}"
    link = ShapedLink(urlsplit(server.endpoint).port or 0, rtt, mbit) if rtt or mbit else None
    try:
        if link is not None:
            link.__enter__()
        url = server.url(prefix)
        if link is not None:
            port = urlsplit(server.endpoint).port
            url = url.replace(f":{port}/", f":{link.port}/", 1)
        env = {
            **server.env(),
            "CAIRN_PASSWORD": PASSWORD,
            "CAIRN_CACHE_DIR": str(work / f"cache-{prefix}"),
            "CAIRN_REPOSITORY": url,
        }
        here = ROOT / "src"
        data = work / f"tree-{prefix}"
        cairn(here, env, "init")
        backups = []
        for day in range(args.days):
            make_tree(data, args.dirs, day)
            backups.append(cairn(here, env, "backup", str(data), "--json"))
        daily = backups[1:] or backups
        row: dict[str, object] = {
            "backup_requests": _mean([_requests(b) for b in daily]),
            "backup_gets": _mean([b["usage"]["get"] for b in daily]),  # type: ignore[index]
            "backup_wall": _mean([float(b["wall"]) for b in daily]),  # type: ignore[arg-type]
            "backup_usage": daily[-1]["usage"],
            **tree_counts(here, env),
        }
        versions = [("cairn", here)]
        if args.baseline:
            versions.insert(0, ("baseline", Path(args.baseline)))
        for name, src in versions:
            res = cairn(src, env, "prune", "--json")
            usage = res["usage"]
            row[name] = {"requests": _requests(res), "wall": res["wall"], **usage}  # type: ignore[dict-item]
            print(f"  {rtt:g} ms {name:8} prune: {row[name]}", flush=True)
        print(
            f"  {rtt:g} ms daily backup: {row['backup_requests']:.0f} requests "
            f"({row['backup_gets']:.0f} GETs), {row['backup_wall']:.2f} s",
            flush=True,
        )
        return row
    finally:
        if link is not None:
            link.__exit__(None, None, None)


def _requests(res: dict[str, object]) -> int:
    usage = res["usage"]
    return sum(v for k, v in usage.items() if not k.startswith("bytes"))  # type: ignore[attr-defined]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dirs", type=int, default=2000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--links", default="0:0,20:100", help="RTT_MS:MBIT, comma-separated")
    ap.add_argument("--baseline", help="another cairn source tree (its src/) to compare")
    ap.add_argument("--workdir", default=tempfile.gettempdir() + "/cairn-bench-prune")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    server = s3server.start()
    try:
        for spec in args.links.split(","):
            rtt, mbit = (float(x) for x in spec.split(":"))
            print(f"link: rtt {rtt:g} ms, {mbit:g} Mbit/s", flush=True)
            results[spec] = one_link(server, work, args, rtt, mbit)
    finally:
        server.stop()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
