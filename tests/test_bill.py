"""The bill, request for request: what a backup records in its snapshot (and what its dry run
estimates) against every HTTP request the S3 client actually sent to SeaweedFS, opening the
repository included; and each request priced at the class of the object it touches."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from cairn.app.context import StackHooks, stack_hooks
from cairn.model.snapshot import Summary
from cairn.ops.cost.bill import GIB
from cairn.ops.cost.estimate import backup_charges, backup_requests, data_packs, prune_cost
from cairn.ops.cost.prices import load_prices
from cairn.ops.prune import PrunePlan, PruneReport
from tests.faults import on_s3_client

# S3 operations as the bill's request kinds
KINDS = {
    "PutObject": "put",
    "GetObject": "get",
    "HeadObject": "head",
    "ListObjectsV2": "list",
    "DeleteObject": "delete",
}


class RequestLog:
    """Every request the S3 clients of the commands in the block send, by kind."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.s3", self._sent)

    def _sent(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.kinds[KINDS.get(operation, operation)] += 1

    def hooks(self) -> StackHooks:
        return StackHooks(wrappers=(on_s3_client(self.attach),))


def make_tree(root):  # type: ignore[no-untyped-def]
    for d in range(5):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(6):
            (root / f"d{d}" / f"f{i}").write_bytes(os.urandom(20_000 + i))
    return root


def test_a_backup_records_every_request_it_sends(tmp_path, s3_url, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0

    dry_log = RequestLog()
    with stack_hooks(dry_log.hooks()):
        res = run_cli("backup", "--repo", s3_url, src, "--dry-run", "--json")
    assert res.code == 0, res.err
    estimate = res.json()["estimate"]["requests"]

    log = RequestLog()
    with stack_hooks(log.hooks()):
        res = run_cli("backup", "--repo", s3_url, src, "--json")
    assert res.code == 0, res.err
    summary = res.json()["summary"]
    sent = {k: log.kinds[k] for k in KINDS.values()}
    # the snapshot records everything but its own PUT and the lock's DELETE, which come after
    recorded = {k: summary["requests"][k] for k in KINDS.values()}
    assert {**recorded, "put": recorded["put"] + 1, "delete": recorded["delete"] + 1} == sent
    assert recorded["list"] >= 2 and recorded["get"] >= 2  # key file, config: the opening
    # the dry run reads as the backup does and counts the writes it would make; its opening,
    # the first from this host, listed the keys, which the backup's does not (the key file it
    # opened is known now: docs/format.md §11.7), and the estimate says so
    assert dry_log.kinds["list"] == sent["list"] + 1
    assert {k: estimate[k] for k in KINDS.values()} == sent
    # and makes only the reads (a backup does not read its own lock back)
    assert dict(dry_log.kinds) == {"get": sent["get"], "list": sent["list"] + 1}
    assert summary["tree_packs_written"] >= 1


def test_tree_packs_are_priced_at_the_metadata_class():
    aws = load_prices(None)["aws"]
    ia = aws.cls("STANDARD_IA")
    summary = Summary(packs_written=3, tree_packs_written=1, requests={"put": 5, "get": 4})
    counts = backup_requests(summary, dry_run=False)
    charges = backup_charges(counts, data_packs(summary), aws, ia)
    meta_puts = counts["put"] - 2
    expected = (
        2 * ia.request_price("put")
        + meta_puts * aws.standard.request_price("put")
        + counts["get"] * aws.standard.request_price("get")
        + counts["delete"] * aws.standard.request_price("delete")
    )
    assert abs(charges.requests - expected) < 1e-12


def test_backups_get_the_free_egress_allowance():
    b2 = next(p for p in load_prices(None).values() if p.egress_free_ratio > 0)
    counts = {"get": 3, "bytes_down": 10 << 20}
    free = backup_charges(counts, 0, b2, b2.standard, stored=float(1 << 30))
    assert free.egress == 0.0
    assert backup_charges(counts, 0, b2, b2.standard).egress > 0.0


def test_forget_prune_and_check_report_every_request_they_send(tmp_path, s3_url, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    for d in range(3):
        (src / f"d{d}" / "f0").write_bytes(os.urandom(30_000))
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    for args in (
        ("forget", "--keep-last", "1"),
        ("prune", "--max-unused", "0%"),
        ("check", "--read-data"),
    ):
        log = RequestLog()
        with stack_hooks(log.hooks()):
            res = run_cli(*args, "--repo", s3_url, "--json")
        assert res.code == 0, (args, res.err)
        reported = res.json()["requests"]
        assert {k: reported[k] for k in KINDS.values()} == {
            k: log.kinds[k] for k in KINDS.values()
        }, args
        assert reported["get"] > 0 and reported["list"] > 0, args


def test_repacked_tree_packs_are_priced_at_the_metadata_class():
    """A prune writes repacked trees to the metadata class, as a backup does: their PUTs and
    their storage are not the data class's."""
    aws = load_prices(None)["aws"]
    ia, std = aws.cls("STANDARD_IA"), aws.standard
    report = PruneReport(
        packs_written=3,
        tree_packs_written=1,
        bytes_repack_written=3 << 20,
        tree_bytes_repack_written=1 << 20,
        requests={"put": 6},
    )
    cost = prune_cost(PrunePlan(), report, {}, aws, ia, datetime.now(UTC))
    puts = 2 * ia.request_price("put") + 4 * std.request_price("put")
    assert abs(cost.charges.requests - puts) < 1e-12
    stored = (2 << 20) / GIB * ia.storage_gb_month + (1 << 20) / GIB * std.storage_gb_month
    assert abs(cost.saves_month + stored) < 1e-12


def test_the_restore_estimate_counts_the_restore_requests(tmp_path, s3_url, run_cli):
    """Opening, index, snapshots, trees, the HEAD that asks whether the first pack is archived,
    the data reads (cairn.ops.restore.packorder): as the restore sends them."""
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    assert run_cli("backup", "--repo", s3_url, src, "--storage-class", "STANDARD_IA").code == 0
    res = run_cli("cost", "--repo", s3_url, "--json")
    assert res.code == 0, res.err
    estimate = res.json()["restore"]["requests"]
    log = RequestLog()
    with stack_hooks(log.hooks()):
        res = run_cli("restore", "--repo", s3_url, "latest", "--target", tmp_path / "out")
    assert res.code == 0, res.err
    # listings of the index and the snapshots; none of the keys: this host knows its key file
    assert (estimate["head"], estimate["list"]) == (log.kinds["head"], log.kinds["list"]) == (1, 2)
    assert 0 < estimate["get"] == log.kinds["get"]
    # with a key hint (which orders the listed keys) the keys are listed, in the estimate too
    hint = ["--key-hint", "0"]
    res = run_cli("cost", "--repo", s3_url, "--json", *hint)
    assert res.code == 0, res.err
    estimate = res.json()["restore"]["requests"]
    log = RequestLog()
    with stack_hooks(log.hooks()):
        res = run_cli("restore", "--repo", s3_url, "latest", "--target", tmp_path / "again", *hint)
    assert res.code == 0, res.err
    assert estimate["list"] == log.kinds["list"] == 3


def test_every_command_that_touches_the_store_says_what_it_sent(tmp_path, s3_url, run_cli):
    """restore, dump, tag, rewrite, key (add, export, import) and repair (index, snapshots):
    their --json has the requests they made,
    kind for kind as the client sent them (the opening included)."""
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    pw = tmp_path / "pw"
    pw.write_text("another password\n")
    commands = [  # (the command's words, its arguments)
        (["restore"], ["latest", "--target", tmp_path / "out"]),
        (["dump"], ["latest", str(src / "d0" / "f0"), "--target", tmp_path / "f0"]),
        (["tag"], ["--add", "kept", "latest"]),
        (["rewrite"], ["latest", "--exclude", "f5"]),
        (["key", "add"], ["--new-password-file", pw]),
        (["key", "export"], ["--new-password-file", pw, tmp_path / "safe.key"]),
        # the exported key's password; the repository's keys are not needed
        (["key", "import"], ["--password-file", pw, tmp_path / "safe.key"]),
        (["repair", "index"], []),
        (["repair", "snapshots"], ["--dry-run"]),
    ]
    for words, args in commands:
        log = RequestLog()
        with stack_hooks(log.hooks()):
            res = run_cli(*words, "--repo", s3_url, *args, "--json")
        assert res.code == 0, (words, res.err)
        said = res.json()["requests"]
        assert {k: said[k] for k in KINDS.values()} == {k: log.kinds[k] for k in KINDS.values()}, (
            words
        )
        # the opening is in: the config and a key file (`key import` brings its own)
        assert said["get"] >= (1 if words == ["key", "import"] else 2), words
