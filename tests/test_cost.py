"""cairn cost and the estimates of dry runs: the arithmetic against hand-computed bills, the
price tables and their overrides, the steady-state model of docs/cost.md, estimates checked
against what a restore and a backup really request (on the local backend and on the real
SeaweedFS server, counted at the boto3 transport), and the command's table and JSON."""

from __future__ import annotations

import collections
import math
import os
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import pytest

from cairn.app.context import StackHooks, StoreOptions, backend_for, stack_hooks, wrap_backend
from cairn.core.errors import ConfigError, UsageError
from cairn.ops.cost import bill, model
from cairn.ops.cost.estimate import backup_charges, prune_cost
from cairn.ops.cost.prices import choose, load_prices, provider_for_url
from cairn.ops.prune import PrunePlan, PruneReport
from cairn.repo import layout
from cairn.repo.index import PackInfo, PackRecord
from cairn.repo.locks import HeldLock, Locks, new_lock
from cairn.repo.pack import BlobRef
from cairn.repo.repository import Repository
from cairn.storage.archive import ObjectInfo
from cairn.storage.base import Storage
from cairn.storage.metered import MeteredStorage
from cairn.storage.s3 import S3Location
from tests import s3server
from tests.conftest import PASSWORD
from tests.faults import on_s3_client

GIB = 1 << 30
MIB = 1 << 20
PRICES = load_prices()
AWS = PRICES["aws"]
STD = AWS.cls("STANDARD")
GIR = AWS.cls("GLACIER_IR")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "cost.md"


# ---------------------------------------------------------------------- the arithmetic
def test_requests_storage_and_minimums_by_hand():
    counts = {"put": 1000, "get": 2000, "list": 10, "delete": 5, "bytes_up": 123}
    assert bill.request_cost(counts, STD) == pytest.approx(0.005 + 0.0008 + 0.00005)
    assert bill.storage_month(10 * GIB, STD) == pytest.approx(0.23)
    # a 1 KiB object in Glacier Instant Retrieval is billed as 128 KiB
    assert bill.storage_month(1024, GIR) == pytest.approx(128 / (1024 * 1024) * 0.004)
    # deleted at 30 days, 60 of its 90 days are still due
    assert bill.early_deletion(30 * GIB, GIR, 30) == pytest.approx(30 * 0.004 * 60 / 30)
    assert bill.early_deletion(30 * GIB, GIR, 120) == 0
    assert bill.early_deletion(30 * GIB, STD, 0) == 0
    # archive classes bill 40 KiB per object on top
    glacier = AWS.cls("GLACIER")
    assert bill.storage_month(GIB, glacier) == pytest.approx((GIB + 40 * 1024) / GIB * 0.0036)


def test_intelligent_tiering_by_age_and_monitoring():
    it = AWS.cls("INTELLIGENT_TIERING")
    assert bill.storage_month(GIB, it, 10) == pytest.approx(0.023 + 0.0000025)
    assert bill.storage_month(GIB, it, 45) == pytest.approx(0.0125 + 0.0000025)
    assert bill.storage_month(GIB, it, 100) == pytest.approx(0.004 + 0.0000025)
    assert bill.storage_month(64 * 1024, it, 100) == pytest.approx(64 / 1024 / 1024 * 0.004)


def test_egress_and_free_allowances():
    assert bill.egress(200 * GIB, AWS) == pytest.approx(18.0)
    b2 = PRICES["b2"]
    # three times the stored data is free: 150 of the 200 GiB
    assert bill.egress(200 * GIB, b2, 50 * GIB) == pytest.approx(50 * 0.0107)
    assert bill.egress(100 * GIB, b2, 50 * GIB) == 0
    assert bill.egress(500 * GIB, PRICES["r2"]) == 0


def test_restoring_archived_objects_by_hand():
    glacier = AWS.cls("GLACIER")
    copies = 2 * 0.023 * 7 / 30  # two GiB at the STANDARD price for a week
    charges, hours = bill.thaw([GIB, GIB], glacier, "Standard", 7, STD)
    assert charges.total == pytest.approx(2 * 0.05 / 1000 + 2 * 0.01 + copies)
    assert hours == 5
    charges, hours = bill.thaw([GIB, GIB], glacier, "Bulk", 7, STD)
    assert charges.total == pytest.approx(copies) and hours == 12
    deep = AWS.cls("DEEP_ARCHIVE")
    charges, hours = bill.thaw([GIB], deep, "Bulk", 1, STD)
    assert charges.total == pytest.approx(0.025 / 1000 + 0.0025 + 0.023 / 30) and hours == 48
    with pytest.raises(UsageError, match="no restore tier 'Expedited'"):
        bill.thaw([GIB], deep, "Expedited", 1, STD)


def test_backup_charges_split_data_packs_from_metadata():
    counts = {"put": 5, "get": 4, "list": 3, "delete": 1, "bytes_down": GIB}
    charges = backup_charges(counts, 3, AWS, GIR)
    # 3 data packs at GLACIER_IR's PUT price, 2 metadata PUTs, GETs and LISTs at STANDARD's
    requests = (3 * 0.02 + 2 * 0.005 + 4 * 0.0004 + 3 * 0.005) / 1000
    assert charges.requests == pytest.approx(requests)
    assert charges.total == pytest.approx(requests + 0.09)


def test_a_dry_run_estimates_the_requests_the_backup_then_makes(tmp_path, run_cli, monkeypatch):
    """Against what a real backup of the same data records: enough packs for two index
    checkpoints (64 packs each), data and tree blobs, the lock and the snapshot (a local
    directory priced as if it were on S3)."""
    monkeypatch.setenv("CAIRN_PROVIDER", "aws")
    repo = tmp_path / "repo"
    src = tmp_path / "src"
    src.mkdir()
    for i in range(90):
        (src / f"f{i:02d}").write_bytes(os.urandom(200 << 10))
    assert run_cli("init", "--repo", repo, "--pack-size", "256K").code == 0
    dry = run_cli("backup", "--repo", repo, src, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    q = dry.json()["estimate"]["requests"]
    res = run_cli("backup", "--repo", repo, src, "--json")
    assert res.code == 0, res.err
    done = res.json()["summary"]
    assert done["packs_written"] > 64  # two index objects at least
    rec = done["requests"]  # they stop before the snapshot is written and the lock removed
    assert q["put"] == rec["put"] + 1
    assert (q["get"], q["list"], q["delete"]) == (rec["get"], rec["list"], rec["delete"] + 1)
    written = sum(p.stat().st_size for p in (repo / "data").rglob("*") if p.is_file())
    written += sum(p.stat().st_size for p in (repo / "index").iterdir())
    assert abs(q["bytes_up"] - written) < 0.02 * written


def _record(n: int, *sizes: int) -> PackRecord:
    blobs, offset = [], 0
    for i, size in enumerate(sizes):
        blobs.append(BlobRef(bytes([n, i]) * 16, offset, size, size))
        offset += size
    return PackRecord(PackInfo(bytes([n]) * 32, b"s" * 16, layout.DATA_BLOB), blobs)


def test_prune_cost_by_hand():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    gone, part = _record(1, 100 * MIB), _record(2, 10 * MIB, 30 * MIB)
    plan = PrunePlan(delete=[gone], repack=[(part, part.blobs[:1])])
    plan.sizes = {gone.info.id: 100 * MIB, part.info.id: 40 * MIB}
    plan.unused = {gone.info.id: 100 * MIB, part.info.id: 30 * MIB}
    report = PruneReport(bytes_repack_written=10 * MIB, packs_written=1)
    report.requests = {"get": 1 + 7, "put": 1 + 3, "delete": 2 + 2, "list": 5}
    report.requests["bytes_down"] = 40 * MIB
    objects = {
        layout.pack_name(gone.info.id.hex()): ObjectInfo(
            "", 100 * MIB, "GLACIER_IR", now - timedelta(days=10)
        ),
        layout.pack_name(part.info.id.hex()): ObjectInfo(
            "", 40 * MIB, "GLACIER_IR", now - timedelta(days=100)
        ),
    }
    cost = prune_cost(plan, report, objects, AWS, GIR, now)
    assert cost.unused_bytes == 130 * MIB
    assert cost.unused_month == pytest.approx(130 / 1024 * 0.004)
    assert cost.saves_month == pytest.approx((140 - 10) / 1024 * 0.004)
    # the 10-day-old pack still owes 80 of its 90 days; the 100-day-old one nothing
    assert cost.charges.early_deletion == pytest.approx(100 / 1024 * 0.004 * 80 / 30)
    # a GET of the repacked pack and a PUT of its new one at GLACIER_IR's prices; the rest
    # (3 PUTs, 7 GETs of planning, 5 LISTs) at STANDARD's; DELETEs are free
    requests = (0.01 + 0.02 + 3 * 0.005 + 7 * 0.0004 + 5 * 0.005) / 1000
    assert cost.charges.requests == pytest.approx(requests)
    assert cost.charges.retrieval == pytest.approx(40 / 1024 * 0.03)
    assert cost.charges.egress == pytest.approx(40 / 1024 * 0.09)
    assert cost.break_even_months == pytest.approx(cost.charges.total / cost.saves_month)


# ---------------------------------------------------------------------- the steady state
def test_model_by_hand_and_against_a_day_by_day_simulation():
    work = model.Workload()
    assert (work.used_gib, work.change_gib) == (1331.2, 51.2)
    m = model.steady_state(work.used_gib, work.change_gib, model.Policy(40, 0.5), AWS, STD)
    assert m.stored_gib == pytest.approx(1331.2 * math.log(2) / 0.5)
    assert m.written_gib_day == pytest.approx(102.4)
    assert m.puts == pytest.approx(30 * 102.4 * 1024 / 40)
    assert m.egress == pytest.approx(30 * 102.4 * 0.09)  # the index is kept on the host
    cold = model.steady_state(
        work.used_gib, work.change_gib, model.Policy(40, 0.5, index_cached=False), AWS, STD
    )
    index_gib = 30 * 2 * m.stored_gib * 1024 * 50 / GIB  # a backup and a prune a day
    assert cold.egress == pytest.approx((30 * 102.4 + index_gib) * 0.09)
    assert m.storage == pytest.approx(m.stored_gib * 0.023)
    gir = model.steady_state(work.used_gib, work.change_gib, model.Policy(40, 0.5), AWS, GIR)
    assert gir.billed_gib == pytest.approx(102.4 * 90)  # packs live 18 days, billed 90
    # the closed form against a day-by-day simulation of cohorts of packs
    t, lam = 0.5, work.change_gib / work.used_gib
    cohorts: list[list[float]] = []  # [stored, used]
    for _day in range(2000):
        for c in cohorts:
            c[1] *= math.exp(-lam)
        rewritten = sum(c[1] for c in cohorts if 1 - c[1] / c[0] > t)
        cohorts = [c for c in cohorts if 1 - c[1] / c[0] <= t]
        cohorts += [[work.change_gib, work.change_gib], [rewritten, rewritten]]
        cohorts = [c for c in cohorts if c[0] > 0]
    stored = sum(c[0] for c in cohorts)
    assert stored == pytest.approx(m.stored_gib, rel=0.03)


def test_restic_threshold_and_the_best_one():
    t = model.restic_threshold(0.05)
    assert 1 - 1 / model.overhead(t) == pytest.approx(0.05)
    assert t == pytest.approx(0.0983, abs=0.0005)
    work = model.Workload()
    best = model.best_threshold(work.used_gib, work.change_gib, model.Policy(), AWS, STD)
    assert 0.8 < best < 0.95  # egress to read packs back dominates: repack rarely
    free = PRICES["r2"]
    cheap = model.best_threshold(
        work.used_gib, work.change_gib, model.Policy(), free, free.cls(None)
    )
    assert cheap < 0.3  # no egress fees: repacking is cheap, unused space is not


def test_the_numbers_in_docs_cost_md_come_from_the_model():
    text = DOCS.read_text()
    work = model.Workload()
    for cls in (STD, GIR):
        for policy in (
            model.Policy(40, 0.5),
            model.Policy(40, 0.65),
            model.Policy(16, model.restic_threshold(0.05)),
        ):
            m = model.steady_state(work.used_gib, work.change_gib, policy, AWS, cls)
            assert f"${m.total:,.2f}" in text, (cls.name, policy)


# ---------------------------------------------------------------------- price tables
def test_price_tables_are_complete_and_dated():
    for key in ("aws", "b2", "wasabi", "r2", "custom"):
        p = PRICES[key]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.taken), key
        assert p.default_class in p.classes
    assert set(AWS.classes) >= {
        "STANDARD",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
        "GLACIER",
        "DEEP_ARCHIVE",
    }
    assert AWS.cls("GLACIER").restore["Standard"].hours == 5
    assert AWS.cls("NO_SUCH_CLASS").name == "STANDARD"
    # every class says when it was last compared with published pricing, as docs/cost.md does
    text = DOCS.read_text()
    for p in PRICES.values():
        for c in p.classes.values():
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", c.checked), (p.key, c.name)
            assert f"| {c.checked} |" in text


def test_user_prices_override_and_add(tmp_path):
    f = tmp_path / "prices.toml"
    f.write_text(
        "[aws]\negress_per_gb = 0.0\n[aws.classes.STANDARD]\nstorage_gb_month = 0.0245\n"
        '[minio]\nname = "our MinIO"\ntaken = "2025-09-01"\n'
        "[minio.classes.STANDARD]\nstorage_gb_month = 0.002\n"
    )
    prices = load_prices(str(f))
    assert (
        prices["aws"].egress_per_gb == 0
        and prices["aws"].cls("STANDARD").storage_gb_month == 0.0245
    )
    assert prices["aws"].cls("STANDARD").put_per_1000 == 0.005  # the rest is kept
    assert (
        prices["minio"].name == "our MinIO" and prices["minio"].cls(None).storage_gb_month == 0.002
    )
    assert choose(prices, "minio", "/x")[0].key == "minio"
    with pytest.raises(UsageError, match="unknown provider"):
        choose(prices, "nope", "/x")
    f.write_text("[aws.classes.STANDARD]\nstorage_gb_mnth = 1\n")
    with pytest.raises(
        ConfigError, match=r"prices.toml: aws.classes.STANDARD.storage_gb_mnth: unknown key"
    ):
        load_prices(str(f))
    f.write_text('[aws.classes.STANDARD]\nstorage_gb_month = "cheap"\n')
    with pytest.raises(ConfigError, match="a number of 0 or more"):
        load_prices(str(f))


def test_provider_from_the_url():
    assert provider_for_url("s3://bucket/x")[0] == "aws"
    assert provider_for_url("s3:https://s3.eu-central-003.backblazeb2.com/b/x")[0] == "b2"
    assert provider_for_url("s3:https://s3.wasabisys.com/b/x")[0] == "wasabi"
    assert provider_for_url("s3:https://acc.r2.cloudflarestorage.com/b/x")[0] == "r2"
    assert provider_for_url("s3:http://127.0.0.1:8333/b/x") == (
        "aws",
        "the endpoint 127.0.0.1 is not one cairn knows: priced as Amazon S3",
    )
    assert provider_for_url("/srv/repo")[0] == "aws"


# ---------------------------------------------------------------------- cairn cost, local
def make_tree(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    for i in range(12):
        (root / "docs" / f"n{i}.txt").write_text(f"note {i}\n" * (i * 300 + 1))
    blob = os.urandom(3 * MIB)
    (root / "a.bin").write_bytes(blob)
    (root / "copy.bin").write_bytes(blob)  # read once: the blob cache
    os.link(root / "a.bin", root / "hard.bin")
    return root


def test_cost_on_a_local_repository_matches_what_restore_reads(tmp_path, repo_path, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    (src / "b.bin").write_bytes(os.urandom(2 * MIB))
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    res = run_cli("cost", "--repo", repo_path, "--json", "--provider", "aws")
    assert res.code == 0, res.err
    doc = res.json()
    stored = sum(p.stat().st_size for p in repo_path.rglob("*") if p.is_file())
    assert doc["storage"]["bytes"] == stored
    assert doc["storage"]["month"] == pytest.approx(stored / GIB * 0.023)
    assert [c["class"] for c in doc["storage"]["classes"]] == ["STANDARD"]
    assert doc["backups"]["count"] == 2 and doc["backups"]["last"]["requests"]["put"] >= 4
    # what the restore estimate counts is what a restore reads, request for request (counted
    # right at the backend)
    meters: list[MeteredStorage] = []

    def meter(backend: Storage) -> Storage:
        meters.append(MeteredStorage(backend))
        return meters[-1]

    out = tmp_path / "out"
    with stack_hooks(StackHooks(wrappers=(meter,))):
        res = run_cli(
            "restore", "--repo", repo_path, "latest", "--target", out, "--concurrency", "1"
        )
    assert res.code == 0, res.err
    (used,) = (m.snapshot() for m in meters)
    r = doc["restore"]
    assert r["requests"] == {"get": used.get, "list": used.list, "head": used.head}
    assert (used.put, used.head, used.delete) == (0, 0, 0)
    assert r["bytes_down"] == used.bytes_down
    assert r["charges"]["egress"] == pytest.approx(used.bytes_down / GIB * 0.09)


def test_cost_table_and_advice(tmp_path, repo_path, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    (src / "a.bin").unlink()
    (src / "copy.bin").unlink()
    (src / "hard.bin").unlink()
    for i in range(3):
        (src / f"new{i}.bin").write_bytes(os.urandom(MIB))
        assert run_cli("backup", "--repo", repo_path, src).code == 0
    assert run_cli("forget", "--repo", repo_path, "--keep-last", "3").code == 0
    res = run_cli("cost", "--repo", repo_path, "--provider", "b2", "--last", "3")
    assert res.code == 0, res.err
    text = res.out
    assert "prices: Backblaze B2 (pay as you go), list prices of 2025-06-01 (--provider b2)" in text
    assert re.search(r"^STANDARD\s+\d+\s+[\d.]+ MiB\s+\$", text, re.M)
    assert re.search(r"^total\s+\d+", text, re.M)
    assert "average of the last 3:" in text and "last backup (" in text
    assert "full restore of the latest snapshot" in text and "Mbit/s" in text
    assert "unused parts of packs:" in text and "a prune with --max-unused 65%" in text
    assert "the model's best --max-unused here:" in text
    doc = run_cli("cost", "--repo", repo_path, "--json", "--max-unused", "10%", "--provider", "aws")
    doc = doc.json()
    assert doc["prune"]["max_unused"] == 0.1 and doc["prune"]["unused_bytes"] > 3 * MIB
    assert doc["prune"]["saves_month"] > 0 and doc["prune"]["charges"]["total"] > 0
    assert 0 < doc["advice"]["best_max_unused"] < 1


def test_prices_file_and_provider_errors(tmp_path, repo_path, run_cli):
    f = tmp_path / "p.toml"
    f.write_text("[aws.classes.STANDARD]\nstorage_gb_month = 1.0\n")
    doc = run_cli("cost", "--repo", repo_path, "--prices", f, "--json", "--provider", "aws").json()
    assert doc["storage"]["month"] == pytest.approx(doc["storage"]["bytes"] / GIB)
    f.write_text("[aws]\nfree = 1\n")
    res = run_cli("cost", "--repo", repo_path, "--prices", f, "--provider", "aws")
    assert res.code == 1 and "p.toml: aws.free: unknown key" in res.err
    res = run_cli("cost", "--repo", repo_path, "--provider", "nope")
    assert res.code == 2 and "unknown provider 'nope'" in res.err


def test_refreshed_prices_apply_to_every_cost(tmp_path, repo_path, run_cli, monkeypatch):
    f = tmp_path / "refreshed.toml"
    f.write_text(
        '[aws]\ntaken = "2027-01-15"\n[aws.classes.STANDARD]\nchecked = "2027-01-15"\n'
        "storage_gb_month = 2.0\n"
    )
    src = make_tree(tmp_path / "src")
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    base = run_cli("cost", "--repo", repo_path, "--month", "--json").json()
    monkeypatch.setenv("CAIRN_PRICES", str(f))
    res = run_cli("cost", "--repo", repo_path, "--month")
    assert res.code == 0, res.err
    assert "list prices of 2027-01-15" in res.out
    doc = run_cli("cost", "--repo", repo_path, "--month", "--json").json()
    assert doc["provider"]["taken"] == "2027-01-15"
    # (a little later in the month: a little more of it stored)
    assert doc["storage"]["cost"] == pytest.approx(base["storage"]["cost"] * 2.0 / 0.023, rel=1e-3)
    f.write_text("[aws.classes.STANDARD]\nchecked = 2027\n")
    res = run_cli("cost", "--repo", repo_path, "--month")
    assert res.code == 1 and "aws.classes.STANDARD.checked: a date" in res.err


def test_prune_dry_run_shows_its_cost(tmp_path, repo_path, run_cli, monkeypatch):
    """Priced at a provider named for a local directory ($CAIRN_PROVIDER); not priced without
    one (nothing bills a local directory)."""
    src = make_tree(tmp_path / "src")
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    (src / "a.bin").unlink()
    (src / "copy.bin").unlink()
    (src / "hard.bin").unlink()
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    assert run_cli("forget", "--repo", repo_path, "--keep-last", "1").code == 0
    res = run_cli("prune", "--repo", repo_path, "--dry-run")
    assert res.code == 0, res.err
    assert "would free" in res.out and "cost:" not in res.out and "$" not in res.out
    assert "cost" not in run_cli("prune", "--repo", repo_path, "--dry-run", "--json").json()
    monkeypatch.setenv("CAIRN_PROVIDER", "aws")
    res = run_cli("prune", "--repo", repo_path, "--dry-run")
    assert res.code == 0, res.err
    assert re.search(
        r"^cost: saves \$[\d.]+ a month, costs \$[\d.]+ once \(requests", res.out, re.M
    )
    doc = run_cli("prune", "--repo", repo_path, "--dry-run", "--json").json()
    freed = doc["bytes_freed"]
    assert doc["cost"]["saves_month"] == pytest.approx(freed / GIB * 0.023, rel=0.01)
    assert doc["cost"]["charges"]["egress"] == pytest.approx(
        doc["requests"]["bytes_down"] / GIB * 0.09
    )


# ---------------------------------------------------------------------- S3, counted by boto3
class RequestCounter:
    """Counts every request the boto3 client sends, and the bytes of PUT and GET bodies."""

    OPS: ClassVar[dict[str, str]] = {
        "PutObject": "put",
        "GetObject": "get",
        "HeadObject": "head",
        "ListObjectsV2": "list",
        "DeleteObject": "delete",
    }

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def on_send(self, request, event_name, **kwargs):  # type: ignore[no-untyped-def]
        op = event_name.rsplit(".", 1)[-1]
        self.counts[self.OPS.get(op, op)] += 1
        if op == "PutObject":
            h = request.headers  # aws-chunked bodies (with a trailing checksum) say both
            size = h.get("x-amz-decoded-content-length") or h.get("Content-Length") or 0
            self.counts["bytes_up"] += int(size)

    def on_get(self, http_response, parsed, **kwargs):  # type: ignore[no-untyped-def]
        if http_response.status_code < 300:
            self.counts["bytes_down"] += int(parsed.get("ContentLength", 0))

    def on_list(self, http_response, **kwargs):  # type: ignore[no-untyped-def]
        self.counts["bytes_down"] += len(http_response.content)

    def attach(self, client) -> None:  # type: ignore[no-untyped-def]
        client.meta.events.register("before-send.s3", self.on_send)
        client.meta.events.register("after-call.s3.GetObject", self.on_get)
        client.meta.events.register("after-call.s3.ListObjectsV2", self.on_list)


@pytest.fixture
def counted():  # type: ignore[no-untyped-def]
    """Every S3 store the commands open counts its requests in one RequestCounter."""
    counter = RequestCounter()
    with stack_hooks(StackHooks(wrappers=(on_s3_client(counter.attach),))):
        yield counter


def test_snapshot_request_counts_match_boto3_and_the_dry_run(
    tmp_path, s3_url, s3_env, run_cli, counted
):
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    (src / "more.bin").write_bytes(os.urandom(3 * MIB))
    dry = run_cli(
        "backup", "--repo", s3_url, src, "--dry-run", "--json", "--storage-class", "STANDARD_IA"
    )
    assert dry.code == 0, dry.err
    estimate = dry.json()["estimate"]
    assert estimate["data_class"] == "STANDARD_IA"
    counted.counts.clear()
    res = run_cli("backup", "--repo", s3_url, src, "--json", "--storage-class", "STANDARD_IA")
    assert res.code == 0, res.err
    rec = res.json()["summary"]["requests"]
    loc = S3Location.parse(s3_url)
    snap = s3_env.client().head_object(
        Bucket=loc.bucket, Key=f"{loc.prefix}snapshots/{res.json()['id']}"
    )
    # the counts start before the opening (the keys listing, a key, the config) and end
    # before the snapshot object and the lock's removal
    seen = counted.counts
    assert seen["list"] == rec["list"]
    assert seen["get"] == rec["get"]
    assert seen["head"] == rec["head"]
    assert seen["put"] == rec["put"] + 1
    assert seen["delete"] == rec["delete"] + 1
    assert seen["bytes_up"] == rec["bytes_up"] + snap["ContentLength"]
    assert seen["bytes_down"] == rec["bytes_down"]
    # the dry run's estimate: the same reads, and the writes its packer counted
    q = estimate["requests"]
    assert abs(q["put"] - (rec["put"] + 1)) <= 1
    assert (q["get"], q["list"], q["delete"]) == (rec["get"], rec["list"], rec["delete"] + 1)
    assert abs(q["bytes_up"] - seen["bytes_up"]) < 0.05 * seen["bytes_up"]


def test_cost_on_s3_reads_storage_classes_from_the_listing(tmp_path, s3_url, s3_env, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "GLACIER_IR").code == 0
    res = run_cli("cost", "--repo", s3_url, "--json")
    assert res.code == 0, res.err
    doc = res.json()
    loc = S3Location.parse(s3_url)
    listed = collections.Counter()
    for page in (
        s3_env.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=loc.bucket, Prefix=loc.prefix)
    ):
        for obj in page["Contents"]:
            listed[obj["StorageClass"]] += 1
    classes = {c["class"]: c["objects"] for c in doc["storage"]["classes"]}
    assert classes == dict(listed) and set(classes) == {"GLACIER_IR", "STANDARD"}
    assert doc["data_class"] == "GLACIER_IR"
    assert doc["provider"]["key"] == "aws"
    gir = next(c for c in doc["restore"]["by_class"] if c["class"] == "GLACIER_IR")
    assert doc["restore"]["charges"]["retrieval"] == pytest.approx(gir["bytes"] / GIB * 0.03)
    text = run_cli("cost", "--repo", s3_url).out
    assert re.search(r"^GLACIER_IR\s+\d+\s+[\d.]+ MiB\s+\$", text, re.M)


def test_cost_while_a_prune_runs_estimates_everything_else(tmp_path, repo_path, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    storage, _ = wrap_backend(backend_for(str(repo_path), StoreOptions()), StoreOptions())
    repo = Repository.open(storage, PASSWORD.encode())
    with HeldLock(Locks(repo), new_lock("prune")):
        res = run_cli("cost", "--repo", repo_path, "--json", "--provider", "aws")
        text = run_cli("cost", "--repo", repo_path, "--provider", "aws").out
    assert res.code == 0, res.err
    doc = res.json()
    assert "another prune" in doc["prune"]["error"] and doc["advice"] is None
    assert doc["restore"]["requests"]["get"] > 0 and doc["storage"]["objects"] > 0
    assert "prune: cannot estimate (another prune" in text


def test_a_local_repository_is_not_priced(tmp_path, repo_path, run_cli):
    """No provider bills a local directory: cost gives its size, a dry run what it would
    store; --provider prices it as if it were there."""
    src = make_tree(tmp_path / "src")
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    res = run_cli("cost", "--repo", repo_path, "--json")
    assert res.code == 0, res.err
    stored = sum(p.stat().st_size for p in repo_path.rglob("*") if p.is_file())
    doc = res.json()
    assert doc["local"] is True and doc["storage"]["bytes"] == stored
    assert "restore" not in doc and "prune" not in doc and "backups" not in doc
    text = run_cli("cost", "--repo", repo_path).out
    assert "a local directory: no provider bills its requests or its storage" in text
    assert not re.search(r"\$\d", text) and "GET" not in text and "PUT" not in text
    assert "local" not in run_cli("cost", "--repo", repo_path, "--provider", "aws", "--json").json()

    (src / "new.bin").write_bytes(os.urandom(MIB))
    res = run_cli("backup", "--repo", repo_path, src, "--dry-run", "--json")
    assert res.code == 0, res.err
    est = res.json()["estimate"]
    assert est["local"] is True and "requests" not in est and "cost" not in est
    assert est["stored"] >= MIB
    text = run_cli("backup", "--repo", repo_path, src, "--dry-run").out
    assert re.search(r"a real backup: stores 1.0\d MiB more; a local directory: no provider", text)
    assert not re.search(r"\$\d", text)


class DataReads:
    """The ranged GETs the boto3 client sends for objects in data/, as (key, offset, length)."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, int, int]] = []
        self.other = 0  # requests of any other kind, or for other objects

    def on_send(self, request, event_name, **kwargs):  # type: ignore[no-untyped-def]
        path = unquote(urlsplit(request.url).path)
        key = path.split(f"/{s3server.BUCKET}/", 1)[-1]
        rng = request.headers.get("Range")
        if event_name.endswith(".GetObject") and "/data/" in key and rng is not None:
            first, last = (int(x) for x in rng.decode().removeprefix("bytes=").split("-"))
            self.reads.append((key, first, last - first + 1))
        else:
            self.other += 1

    def attach(self, client) -> None:  # type: ignore[no-untyped-def]
        client.meta.events.register("before-send.s3", self.on_send)


def _partly_changed_tree(root: Path) -> None:
    """Many small files (several windows' worth of blob places, many 128 KiB packs) and a
    large one."""
    rng = random.Random(5)
    for d in range(6):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(70):
            (root / f"d{d}" / f"f{i:02d}").write_bytes(rng.randbytes(rng.randrange(1500, 9000)))
    (root / "large.bin").write_bytes(rng.randbytes(3 * MIB))


def test_the_restore_estimate_is_the_restores_data_reads_on_s3(tmp_path, s3_url, s3_env, run_cli):
    """On SeaweedFS: the data GETs and bytes `cairn cost` counts for a full restore of the
    latest snapshot are those the restore sends, request for request, whether it reads whole
    packs (the first backup) or parts of them with gaps between (after files were removed and
    changed, the next snapshot needs some of the blobs of the first backup's packs)."""
    src = tmp_path / "src"
    _partly_changed_tree(src)
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    ia = ("--storage-class", "STANDARD_IA")  # data packs in a class of their own, trees not
    assert run_cli("backup", "--repo", s3_url, src, *ia).code == 0
    loc = S3Location.parse(s3_url)

    def data_keys() -> set[str]:
        pages = (
            s3_env.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=loc.bucket, Prefix=f"{loc.prefix}data/")
        )
        return {
            o["Key"] for p in pages for o in p["Contents"] if o["StorageClass"] == "STANDARD_IA"
        }

    def estimated_and_made(out: Path) -> tuple[tuple[int, int], list[tuple[str, int, int]]]:
        res = run_cli("cost", "--repo", s3_url, "--json", "--provider", "aws")
        assert res.code == 0, res.err
        (line,) = res.json()["restore"]["by_class"]
        assert line["class"] == "STANDARD_IA"
        log = DataReads()
        with stack_hooks(StackHooks(wrappers=(on_s3_client(log.attach),))):
            res = run_cli("restore", "--repo", s3_url, "latest", "--target", out)
        assert res.code == 0, res.err
        keys = data_keys()
        made = [r for r in log.reads if r[0] in keys]
        return (line["gets"], line["bytes"]), made

    # whole packs
    (gets, nbytes), made = estimated_and_made(tmp_path / "out1")
    assert (gets, nbytes) == (len(made), sum(n for _, _, n in made))
    assert len(made) > 1

    # parts of packs: four files in ten gone (gaps too large to read through), a few changed
    for i, f in enumerate(sorted(src.rglob("f*"))):
        if i % 10 in (3, 4, 5, 6):
            f.unlink()
        elif i % 17 == 0:
            f.write_bytes(os.urandom(4000))
    assert run_cli("backup", "--repo", s3_url, src, *ia).code == 0
    (gets, nbytes), made = estimated_and_made(tmp_path / "out2")
    assert (gets, nbytes) == (len(made), sum(n for _, _, n in made))
    by_pack = collections.Counter(key for key, _, _ in made)
    assert max(by_pack.values()) > 1, "no pack was read in parts"
    sizes = {
        o["Key"]: o["Size"]
        for o in s3_env.client().list_objects_v2(Bucket=loc.bucket, Prefix=f"{loc.prefix}data/")[
            "Contents"
        ]
    }
    read = collections.Counter()
    for key, _, n in made:
        read[key] += n
    assert any(n < sizes[key] // 2 for key, n in read.items()), "no pack was read in part"
