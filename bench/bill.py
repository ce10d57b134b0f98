"""A month of cairn on a real S3 server, billed by hand and compared with what cairn says.

Against SeaweedFS (tests/s3server.py), through the counting proxy (bench/http_count.py, which
keeps every request that goes over the wire: method, object, storage class asked for, body
bytes each way, time): 10 daily backups of a generated tree (two days of
../shared/bench/make_dataset.py --mutate between backups), data packs in STANDARD_IA, each
backup after its dry run; forget --keep-last 5; a prune that removes something and one that
removes nothing, each after its dry run; `cairn cost --json` and a full restore at each
provider (the gap between needed blobs a restore reads through rather than make another GET
follows the provider's prices, so each provider's estimate is compared with its own restore);
`cairn cost --month --json` priced at Amazon S3 (us-east-1) and Backblaze B2.

The hand bill (``hand``) uses only the proxy's request log and the bucket's listings (taken
straight from the server after every step), and the price table (src/cairn/ops/cost/prices.toml
read with tomllib): every request at the class of the object it touches (the class a PUT asked
for; a LIST at the default class), retrieval for bytes read from a class with a retrieval fee,
egress for every body byte downloaded (less the provider's free allowance), storage of every
object for the time it existed (from its LastModified to its DELETE), at
max(size, minimum size), and the early-deletion fee of objects deleted before their class's
minimum duration. cairn has no fake clock (core/clock.py reads the real time), so the month is
one real run of some minutes: the commands' requests are what a month of them sends, the
storage is that of the minutes the run lasted, in the current calendar month.

    python -m bench.bill --size 600M --workdir DIR [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests import s3server  # noqa: E402

from bench.http_count import CountingProxy, Request  # noqa: E402
from cairn.model.snapshot import Summary  # noqa: E402
from cairn.ops.cost.estimate import backup_charges, backup_requests, data_packs  # noqa: E402
from cairn.ops.cost.prices import load_prices  # noqa: E402

MAKE_DATASET = ROOT.parent / "shared" / "bench" / "make_dataset.py"
PRICES = ROOT / "src" / "cairn" / "ops" / "cost" / "prices.toml"
PREFIX = "bill"
DATA_CLASS = "STANDARD_IA"
PROVIDERS = ("aws", "b2")
KINDS = ("put", "get", "head", "list", "delete")
GIB = float(1 << 30)
DAY = 86400.0


# ---------------------------------------------------------------------- the price table
class Table:
    """prices.toml as the provider publishes it: a class the table does not list is priced
    as the provider's default class."""

    def __init__(self, key: str) -> None:
        self.p = tomllib.loads(PRICES.read_text())[key]
        self.default = self.p["default_class"]

    def cls(self, name: str | None) -> dict[str, Any]:
        classes = self.p["classes"]
        return classes.get(name or self.default) or classes[self.default]

    def get(self, cls: str | None, item: str) -> float:
        return float(self.cls(cls).get(item, 0.0))

    def billed(self, size: int, cls: str | None) -> float:
        c = self.cls(cls)
        return (
            max(float(size), c.get("min_object_kb", 0) * 1024.0) + c.get("overhead_kb", 0) * 1024.0
        )


# ---------------------------------------------------------------------- the request log
@dataclass
class Op:
    """One request as the bill sees it: its kind, the object, that object's class then."""

    time: float
    kind: str
    key: str
    cls: str | None
    up: int
    down: int


def classify(r: Request) -> tuple[str, str]:
    path, _, query = r.target.partition("?")
    q = parse_qs(query, keep_blank_values=True)
    parts = path.lstrip("/").split("/", 1)
    key = unquote(parts[1]) if len(parts) > 1 else ""
    m = r.method
    if m == "GET":
        return ("list" if not key or "list-type" in q else "get"), key
    if m in ("PUT", "POST"):
        return ("delete" if "delete" in q else "put"), key
    return m.lower(), key


@dataclass
class Store:
    """What the bucket held, from listings and the request log: each object's size, class,
    when it appeared, when it was deleted."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)

    def listing(self, client: Any) -> dict[str, dict[str, Any]]:
        seen = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=s3server.BUCKET, Prefix=PREFIX + "/"
        ):
            for o in page.get("Contents", []):
                seen[o["Key"]] = {
                    "size": o["Size"],
                    "class": o.get("StorageClass") or "STANDARD",
                    "modified": o["LastModified"].timestamp(),
                }
        for k, v in seen.items():
            obj = self.objects.setdefault(k, {"deleted": None})
            obj.update(v)
        return seen

    def apply(self, reqs: list[Request]) -> list[Op]:
        """The requests in the bill's terms; PUTs and DELETEs update what the store holds."""
        ops = []
        for r in sorted(reqs, key=lambda r: r.time):
            kind, key = classify(r)
            obj = self.objects.get(key)
            if kind == "put":
                cls = r.storage_class or "STANDARD"
                self.objects[key] = {
                    "size": r.up,
                    "class": cls,
                    "modified": r.time,
                    "deleted": None,
                    "from_log": True,
                }
            elif kind in ("list",):
                cls = None
            else:
                cls = obj["class"] if obj else None
            if kind == "delete" and obj is not None and obj["deleted"] is None:
                obj["deleted"] = r.time
            ops.append(Op(r.time, kind, key, cls, r.up, r.down))
        return ops


def counts(ops: list[Op]) -> dict[str, int]:
    c = Counter(o.kind for o in ops)
    return {k: c.get(k, 0) for k in KINDS} | {
        "bytes_up": sum(o.up for o in ops),
        "bytes_down": sum(o.down for o in ops),
    }


# ---------------------------------------------------------------------- the hand bill
def requests_bill(ops: list[Op], t: Table, stored: float) -> dict[str, float]:
    """Requests at each object's class, retrieval, egress (after the free allowance for
    ``stored`` bytes)."""
    req = sum(t.get(o.cls, f"{o.kind}_per_1000") / 1000 for o in ops)
    retrieval = sum(o.down / GIB * t.get(o.cls, "retrieval_per_gb") for o in ops if o.kind == "get")
    down = sum(o.down for o in ops)
    free = float(t.p.get("egress_free_ratio", 0)) * stored
    egress = max(0.0, down - free) / GIB * float(t.p.get("egress_per_gb", 0))
    return {
        "requests": req,
        "retrieval": retrieval,
        "egress": egress,
        "total": req + retrieval + egress,
    }


def early_deletion(store: Store, t: Table, since: float, until: float) -> float:
    """Objects deleted in [since, until) before their class's minimum duration: billed for the
    rest of it."""
    fee = 0.0
    for o in store.objects.values():
        if o["deleted"] is None or not since <= o["deleted"] < until:
            continue
        age = (o["deleted"] - o["modified"]) / DAY
        rest = max(0.0, t.get(o["class"], "min_days") - age)
        fee += (
            t.billed(o["size"], o["class"])
            / GIB
            * t.get(o["class"], "storage_gb_month")
            * rest
            / 30
        )
    return fee


def storage_month(
    store: Store, t: Table, start: float, until: float, days: float
) -> dict[str, float]:
    """Every object for the part of [start, until) it existed, as a share of the month."""
    cost = avg = 0.0
    for o in store.objects.values():
        a = max(start, o["modified"])
        b = min(until, o["deleted"] or until)
        if b <= a:
            continue
        share = (b - a) / DAY / days
        cost += (
            t.billed(o["size"], o["class"]) / GIB * t.get(o["class"], "storage_gb_month") * share
        )
        avg += o["size"] * share
    return {"cost": cost, "average_bytes": avg}


def standing(listing: dict[str, dict[str, Any]], t: Table) -> float:
    """A month of the listing as it stands."""
    return sum(
        t.billed(o["size"], o["class"]) / GIB * t.get(o["class"], "storage_gb_month")
        for o in listing.values()
    )


# ---------------------------------------------------------------------- the run
class Bench:
    def __init__(self, work: Path, server: Any, proxy: CountingProxy) -> None:
        self.work = work
        self.server = server
        self.proxy = proxy
        self.client = server.client()
        self.store = Store()
        self.steps: list[dict[str, Any]] = []
        self.env = {
            **os.environ,
            **server.env(),
            "CAIRN_PASSWORD": "benchmark password",
            "CAIRN_CACHE_DIR": str(work / "cache"),
            "CAIRN_REPOSITORY": f"s3:{proxy.endpoint}/{s3server.BUCKET}/{PREFIX}",
            "CAIRN_STORAGE_CLASS": DATA_CLASS,
            "CAIRN_S3_PATH_STYLE": "true",
            "PYTHONPATH": str(ROOT / "src"),
        }
        self.exe = str(Path(sys.executable).parent / "cairn")

    def run(self, name: str, *args: str, provider: str = "aws") -> dict[str, Any]:
        """Runs one command through the proxy: its --json, its requests, the listing after."""
        self.proxy.entries = []
        t0 = time.time()
        env = {**self.env, "CAIRN_PROVIDER": provider}
        p = subprocess.run([self.exe, *args], env=env, capture_output=True, text=True)
        t1 = time.time()
        reqs, self.proxy.entries = self.proxy.entries, None
        if p.returncode != 0:
            raise SystemExit(f"{name}: cairn {' '.join(args)} failed: {p.stderr.strip()}")
        ops = self.store.apply(reqs)
        listing = self.store.listing(self.client)
        try:
            doc = json.loads(p.stdout) if "--json" in args else {}
        except json.JSONDecodeError:
            doc = {"text": p.stdout}
        step = {
            "name": name,
            "t0": t0,
            "t1": t1,
            "seconds": t1 - t0,
            "ops": ops,
            "sent": counts(ops),
            "doc": doc,
            "listing": listing,
            "stored": float(sum(o["size"] for o in listing.values())),
        }
        self.steps.append(step)
        print(f"{name}: {t1 - t0:.1f} s, {sum(counts(ops)[k] for k in KINDS)} requests", flush=True)
        return step


def mutate(dataset: Path, size: str, day: int) -> None:
    subprocess.run(
        [
            sys.executable,
            str(MAKE_DATASET),
            str(dataset),
            "--size",
            size,
            "--mutate",
            "--day",
            str(day),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def month_run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dataset = work / "dataset"
    subprocess.run(
        [sys.executable, str(MAKE_DATASET), str(dataset), "--size", args.size],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    files0 = sum(1 for p in dataset.rglob("*") if p.is_file())
    server = s3server.start()
    host, port = server.endpoint.rsplit("//", 1)[1].split(":")
    proxy = CountingProxy((host, int(port)))
    b = Bench(work, server, proxy)
    try:
        b.run("init", "init")
        for day in range(1, args.days + 1):
            if day > 1:  # two days of the generator's changes (~1.8% of files each)
                mutate(dataset, args.size, 2 * day - 3)
                mutate(dataset, args.size, 2 * day - 2)
            b.run(f"backup-dry {day}", "backup", str(dataset), "--dry-run", "--json")
            b.run(f"backup {day}", "backup", str(dataset), "--json")
        b.run("forget", "forget", "--keep-last", str(args.keep), "--json")
        # the first prune repacks what --max-unused lets it (data packs among them: reading back
        # STANDARD_IA, deleting it early); the second finds nothing to do
        for n, threshold in ((1, args.max_unused), (2, "65%")):
            opts = ("--max-unused", threshold)
            for prov in PROVIDERS:
                b.run(f"prune-dry {n} {prov}", "prune", *opts, "--dry-run", "--json", provider=prov)
            b.run(f"prune {n}", "prune", *opts, "--json")
        for prov in PROVIDERS:
            b.run(f"cost {prov}", "cost", "--json", provider=prov)
        restored = 0
        for prov in PROVIDERS:
            target = work / "restored"
            b.run(
                f"restore {prov}",
                "restore",
                "latest",
                "--target",
                str(target),
                "--json",
                provider=prov,
            )
            restored = sum(1 for p in target.rglob("*") if p.is_file())
            shutil.rmtree(target, ignore_errors=True)
        for prov in PROVIDERS:
            b.run(f"month {prov}", "cost", "--month", "--json", provider=prov)
    finally:
        proxy.close()
        server.stop()
    return compare(b, files0, restored)


# ---------------------------------------------------------------------- the comparison
def pct(cairn: float, hand: float) -> float | None:
    if hand == 0:
        return 0.0 if cairn == 0 else None
    return 100.0 * (cairn - hand) / hand


def compare(b: Bench, files0: int, restored: int) -> dict[str, Any]:
    steps = {s["name"]: s for s in b.steps}
    rows: list[dict[str, Any]] = []
    cairn_prices = load_prices(None)

    def row(figure: str, prov: str, cairn: float, hand: float) -> None:
        rows.append(
            {
                "figure": figure,
                "provider": prov,
                "cairn": cairn,
                "hand": hand,
                "diff_pct": pct(cairn, hand),
            }
        )

    days = sorted(int(n.split()[1]) for n in steps if n.startswith("backup ") and "dry" not in n)
    backup_hand: dict[str, list[float]] = {p: [] for p in PROVIDERS}
    for prov in PROVIDERS:
        t = Table(prov)
        provider = cairn_prices[prov]
        data = provider.cls(DATA_CLASS)
        for d in days:
            real, dry = steps[f"backup {d}"], steps[f"backup-dry {d}"]
            recorded = backup_requests(_summary(real["doc"]["summary"]), dry_run=False)
            hand = requests_bill(real["ops"], t, real["stored"])
            backup_hand[prov].append(hand["total"])
            mine = backup_charges(
                recorded,
                data_packs(_summary(real["doc"]["summary"])),
                provider,
                data,
                real["stored"],
            )
            if prov == "aws":
                row(
                    f"backup {d}: requests (count)",
                    "-",
                    sum(recorded[k] for k in KINDS),
                    sum(real["sent"][k] for k in KINDS),
                )
                row(
                    f"backup {d}: bytes down",
                    "-",
                    recorded["bytes_down"],
                    real["sent"]["bytes_down"],
                )
                est = dry["doc"]["estimate"]
                row(
                    f"backup {d}: dry run requests (count)",
                    "-",
                    sum(est["requests"][k] for k in KINDS),
                    sum(real["sent"][k] for k in KINDS),
                )
                row(f"backup {d}: dry run cost", prov, est["cost"], hand["total"])
            else:
                est_counts = dry["doc"]["estimate"]["requests"]
                est = backup_charges(
                    est_counts,
                    data_packs(_summary(dry["doc"]["summary"])),
                    provider,
                    data,
                    real["stored"],
                )
                row(f"backup {d}: dry run cost", prov, est.total, hand["total"])
            row(f"backup {d}: cost", prov, mine.total, hand["total"])
        for n in (1, 2):
            real, dry = steps[f"prune {n}"], steps[f"prune-dry {n} {prov}"]
            hand = requests_bill(real["ops"], t, real["stored"])
            fee = early_deletion(b.store, t, real["t0"], real["t1"] + 1)
            est = dry["doc"].get("cost") or dry["doc"].get("estimate") or {}
            ch = est.get("charges", {})
            # what the packs cost a month before and after (the new index and the operation
            # record are not in cairn's saving: a few hundred KiB)
            before = _packs(steps[f"prune-dry {n} {prov}"]["listing"])
            saves = standing(before, t) - standing(_packs(real["listing"]), t)
            row(f"prune {n}: requests", prov, ch.get("requests", 0), hand["requests"])
            row(f"prune {n}: egress", prov, ch.get("egress", 0), hand["egress"])
            row(f"prune {n}: retrieval", prov, ch.get("retrieval", 0), hand["retrieval"])
            row(f"prune {n}: early deletion", prov, ch.get("early_deletion", 0), fee)
            row(f"prune {n}: total", prov, ch.get("total", 0), hand["total"] + fee)
            row(f"prune {n}: saves a month", prov, est.get("saves_month", 0), saves)
            if prov == "aws":
                for src, doc in (("dry run", dry["doc"]), ("--json", real["doc"])):
                    q = doc.get("requests", {})
                    row(
                        f"prune {n}: {src} requests (count)",
                        "-",
                        sum(q.get(k, 0) for k in KINDS),
                        sum(real["sent"][k] for k in KINDS),
                    )
        cost = steps[f"cost {prov}"]
        row(
            "cost: storage a month (listing)",
            prov,
            cost["doc"]["storage"]["month"],
            standing(cost["listing"], t),
        )
        rest = cost["doc"]["restore"]
        real = steps[f"restore {prov}"]
        hand = requests_bill(real["ops"], t, real["stored"])
        row(
            "restore: requests (count)",
            prov,
            sum(rest["requests"].values()),
            sum(real["sent"][k] for k in KINDS),
        )
        row("restore: bytes down", prov, rest["bytes_down"], real["sent"]["bytes_down"])
        # the data reads: cairn's by the class it prices them at, the bill's by the packs'
        data = [o for o in real["ops"] if o.kind == "get" and o.cls == DATA_CLASS]
        lines = rest["by_class"]
        row("restore: data GETs (count)", prov, sum(c["gets"] for c in lines), len(data))
        row(
            "restore: data bytes down",
            prov,
            sum(c["bytes"] for c in lines),
            sum(o.down for o in data),
        )
        for k in ("requests", "retrieval", "egress", "total"):
            row(f"restore: {k}", prov, rest["charges"][k], hand[k])
        # the month: backups and the commands that record (forget, prunes); storage up to `until`
        m = steps[f"month {prov}"]["doc"]
        start = datetime.fromisoformat(m["from"]).timestamp()
        until = datetime.fromisoformat(m["until"]).timestamp()
        mdays = _month_days(datetime.fromisoformat(m["from"]))
        st = storage_month(b.store, t, start, until, mdays)
        bops = [o for d in days for o in steps[f"backup {d}"]["ops"]]
        mops = [o for n in ("forget", "prune 1", "prune 2") for o in steps[n]["ops"]]
        hb = requests_bill(bops, t, st["average_bytes"])
        # maintenance's egress: the month's, less the backups' (the allowance goes to them first)
        hm = requests_bill(mops, t, 0.0)
        both = requests_bill(bops + mops, t, st["average_bytes"])["egress"]
        hm["total"] += both - hb["egress"] - hm["egress"]
        hm["egress"] = both - hb["egress"]
        fee = early_deletion(b.store, t, start, until + 1)
        if prov == "aws":
            for k in KINDS:
                row(
                    f"month: backups {k} (count)", "-", m["backups"]["requests"][k], counts(bops)[k]
                )
                row(
                    f"month: maintenance {k} (count)",
                    "-",
                    m["maintenance"]["requests"][k],
                    counts(mops)[k],
                )
        row("month: storage", prov, m["storage"]["cost"], st["cost"])
        row("month: average bytes stored", prov, m["storage"]["average_bytes"], st["average_bytes"])
        row("month: backups requests", prov, m["backups"]["charges"]["requests"], hb["requests"])
        row("month: backups egress", prov, m["backups"]["charges"]["egress"], hb["egress"])
        row(
            "month: maintenance requests",
            prov,
            m["maintenance"]["charges"]["requests"],
            hm["requests"],
        )
        row("month: maintenance egress", prov, m["maintenance"]["charges"]["egress"], hm["egress"])
        row(
            "month: maintenance retrieval",
            prov,
            m["maintenance"]["charges"].get("retrieval", 0),
            hm["retrieval"],
        )
        row(
            "month: early deletion", prov, m["maintenance"]["charges"].get("early_deletion", 0), fee
        )
        row("month: total", prov, m["total"], st["cost"] + hb["total"] + hm["total"] + fee)
        row(
            "month: forecast storage",
            prov,
            m["forecast"]["storage"],
            _forecast(steps[f"month {prov}"]["listing"], t, until),
        )
    # a daily no-op prune against a daily backup, at the hand bill
    verdict = {}
    for prov in PROVIDERS:
        t = Table(prov)
        real = steps["prune 2"]
        noop = requests_bill(real["ops"], t, real["stored"])["total"]
        daily = sum(backup_hand[prov][1:]) / max(1, len(backup_hand[prov]) - 1)
        verdict[prov] = {"noop_prune": noop, "daily_backup": daily, "holds": noop < daily}
    share = _change_share(steps, files0)
    return {
        "rows": rows,
        "noop_vs_backup": verdict,
        "restored_files": restored,
        "files": files0,
        "daily_stored": share,
        "seconds": {s["name"]: round(s["seconds"], 1) for s in b.steps},
        "sent": {s["name"]: s["sent"] for s in b.steps},
        "ops": {s["name"]: [[o.kind, o.key, o.cls, o.down] for o in s["ops"]] for s in b.steps},
        "docs": {s["name"]: s["doc"] for s in b.steps if s["name"] != "init"},
    }


def _summary(d: dict[str, Any]) -> Summary:
    fields = Summary.__dataclass_fields__
    return Summary(**{k: v for k, v in d.items() if k in fields})


def _packs(listing: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in listing.items() if k.startswith(f"{PREFIX}/data/")}


def _month_days(start: datetime) -> float:
    nxt = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)
    return (nxt - start).total_seconds() / DAY


def _forecast(listing: dict[str, dict[str, Any]], t: Table, now: float) -> float:
    """The next 30 days of the listing: storage (IA and the rest have no age tiers here)."""
    del now
    return max(standing(listing, t), float(t.p.get("min_monthly", 0)))


def _change_share(steps: dict[str, Any], files0: int) -> list[int]:
    return [
        steps[n]["doc"]["summary"].get("bytes_stored", 0)
        for n in steps
        if n.startswith("backup ") and "dry" not in n
    ]


def summary(result: dict[str, Any]) -> str:
    """The table of docs/cost.md §8: the backups summed over the month (with the day furthest
    off), everything else as it is, aws and b2 side by side."""
    rows = result["rows"]
    out: dict[str, dict[str, list[float]]] = {}  # figure -> provider -> [cairn, hand, worst]

    def add(figure: str, prov: str, cairn: float, hand: float, worst: float | None) -> None:
        line = out.setdefault(figure, {}).setdefault(prov, [0, 0, 0.0])
        line[0] += cairn
        line[1] += hand
        if worst is not None:
            line[2] = max(line[2], abs(worst))

    for r in rows:
        f = r["figure"]
        if f.startswith("backup "):
            what = f.split(": ", 1)[1]
            add(f"10 backups: {what}", r["provider"], r["cairn"], r["hand"], r["diff_pct"])
        elif "(count)" in f or r["provider"] == "-":
            add(f, r["provider"], r["cairn"], r["hand"], r["diff_pct"])
        else:
            add(f, r["provider"], r["cairn"], r["hand"], r["diff_pct"])
    lines = [
        "| figure | aws: cairn | hand | diff | b2: cairn | hand | diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure, provs in out.items():
        cells = []
        for prov in ("aws", "b2") if "-" not in provs else ("-",):
            if prov not in provs:
                cells += ["", "", ""]
                continue
            c, h, _ = provs[prov]
            d = pct(c, h)
            cells += [_fmt(c), _fmt(h), "n/a" if d is None else f"{d:+.2f}%"]
        if "-" in provs:
            cells += ["", "", ""]
        lines.append(f"| {figure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(result: dict[str, Any]) -> str:
    lines = ["| figure | provider | cairn | hand | diff |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        d = r["diff_pct"]
        ds = "n/a" if d is None else f"{d:+.2f}%"
        lines.append(
            f"| {r['figure']} | {r['provider']} | {_fmt(r['cairn'])} | {_fmt(r['hand'])} | {ds} |"
        )
    return "\n".join(lines)


def _fmt(x: float) -> str:
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, int) or (float(x).is_integer() and abs(x) >= 1):
        return f"{int(x):,}"
    return f"${x:.6g}" if abs(x) < 1e3 else f"{x:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="600M")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--keep", type=int, default=5)
    ap.add_argument("--max-unused", default="10%", help="the first prune's threshold")
    ap.add_argument("--json", help="write the whole result here")
    args = ap.parse_args()
    result = month_run(args)
    print(table(result))
    print()
    print(summary(result))
    print(json.dumps(result["noop_vs_backup"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
