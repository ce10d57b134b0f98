"""What a month cost, from what the repository recorded: operation records of the commands
that write (docs/format.md §8.1), `cairn cost --month` against every request the S3 client
sent to SeaweedFS, the prune's estimate against the prune, and the model's maintenance
against a real forget and prune."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from cairn.app.context import StackHooks, stack_hooks
from cairn.model.oprecord import DeletedObject, OpRecord, RecordFormatError, RemovedBackup
from cairn.ops.cost import model
from cairn.repo import layout
from tests.faults import on_s3_client
from tests.test_bill import KINDS, RequestLog, make_tree
from tests.test_prune_trees import tree_packs

REQ = tuple(KINDS.values())


class NamedLog(RequestLog):
    """A RequestLog that also keeps the prefix (data/, index/, ...) of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.by_prefix: Counter[tuple[str, str]] = Counter()

    def attach(self, client: Any) -> None:
        super().attach(client)

        def named(params: Any, model: Any, **_: Any) -> None:
            key = params.get("Key") or params.get("Prefix") or ""
            parts = key.split("/")
            prefix = parts[1] if len(parts) > 1 else ""
            with self._lock:
                self.by_prefix[(KINDS.get(model.name, model.name), prefix)] += 1

        client.meta.events.register("before-parameter-build.s3", named)


def logged(run_cli, log: RequestLog, *args):  # type: ignore[no-untyped-def]
    with stack_hooks(StackHooks(wrappers=(on_s3_client(log.attach),))):
        res = run_cli(*args)
    assert res.code == 0, (args, res.err)
    return res


def kinds(counts: Any) -> dict[str, int]:
    return {k: counts.get(k, 0) for k in REQ}


def change(src, n: int) -> None:  # type: ignore[no-untyped-def]
    for d in range(n):
        (src / f"d{d}" / "f0").write_bytes(os.urandom(30_000))


def test_cost_month_sums_what_backups_and_maintenance_sent(tmp_path, s3_url, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    backups, upkeep = RequestLog(), RequestLog()
    for day in range(3):
        change(src, day + 1)
        logged(run_cli, backups, "backup", "--repo", s3_url, src)
    # forget removes a snapshot: its backup stays in the month through forget's record
    forget = logged(run_cli, upkeep, "forget", "--repo", s3_url, "--keep-last", "2", "--json")
    assert forget.json()["removed"] == 1
    logged(run_cli, upkeep, "prune", "--repo", s3_url, "--max-unused", "0%")
    logged(run_cli, upkeep, "tag", "--repo", s3_url, "--add", "kept", "latest")
    pw = tmp_path / "pw"
    pw.write_text("another password\n")
    logged(run_cli, upkeep, "key", "add", "--repo", s3_url, "--new-password-file", pw)
    # dry runs write nothing, so record nothing
    assert run_cli("prune", "--repo", s3_url, "--dry-run").code == 0
    assert run_cli("tag", "--repo", s3_url, "--add", "x", "latest", "--dry-run").code == 0

    res = run_cli("cost", "--repo", s3_url, "--month", "--json")
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["month"] == datetime.now(UTC).strftime("%Y-%m")
    b, m = doc["backups"], doc["maintenance"]
    assert (b["count"], b["removed"]) == (3, 1)
    assert kinds(b["requests"]) == kinds(backups.kinds)
    assert m["commands"] == {"forget": 1, "key add": 1, "prune": 1, "tag": 1}
    assert kinds(m["requests"]) == kinds(upkeep.kinds)
    assert m["charges"]["requests"] > 0 and b["charges"]["requests"] > 0
    assert doc["storage"]["average_bytes"] > 0 and doc["storage"]["cost"] > 0
    parts = doc["storage"]["cost"] + b["charges"]["total"] + m["charges"]["total"]
    assert doc["total"] == pytest.approx(parts)
    f = doc["forecast"]
    assert f["total"] == pytest.approx(f["storage"] + f["backups"] + f["maintenance"])
    assert f["maintenance"] > 0

    text = run_cli("cost", "--repo", s3_url, "--month", doc["month"])
    assert text.code == 0, text.err
    assert "backups: 3 backups (1 of them forgotten since)" in text.out
    assert "maintenance: 4 runs (forget 1, key add 1, prune 1, tag 1)" in text.out
    assert f"{b['requests']['put']} PUT" in text.out and "next 30 days:" in text.out

    # another month has none of it
    empty = run_cli("cost", "--repo", s3_url, "--month", "2001-02", "--json").json()
    assert empty["backups"]["count"] == empty["maintenance"]["count"] == 0
    assert empty["storage"]["average_bytes"] == 0


def test_the_prune_estimate_is_the_prune_request_for_request(tmp_path, s3_url, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    for _ in range(4):
        change(src, 3)
        assert run_cli("backup", "--repo", s3_url, src).code == 0
    (src / "d4").rename(tmp_path / "gone")  # whole packs unused: deleted without a read
    assert run_cli("backup", "--repo", s3_url, src).code == 0
    assert run_cli("forget", "--repo", s3_url, "--keep-last", "1").code == 0
    for threshold in ("50%", "0%"):
        dry = run_cli("prune", "--repo", s3_url, "--max-unused", threshold, "--dry-run", "--json")
        assert dry.code == 0, dry.err
        estimate = dry.json()
        log = RequestLog()
        real = logged(run_cli, log, "prune", "--repo", s3_url, "--max-unused", threshold, "--json")
        done = real.json()
        assert (done["packs_deleted"], done["packs_repacked"], done["packs_written"]) == (
            estimate["packs_deleted"],
            estimate["packs_repacked"],
            estimate["packs_written"],
        )
        assert done["packs_deleted"] + done["packs_repacked"] > 0, threshold
        assert kinds(estimate["requests"]) == kinds(log.kinds), threshold
        assert kinds(done["requests"]) == kinds(log.kinds), threshold
        # what it downloads: planning's index objects, snapshots and tree packs (those this
        # host has no copy of) and listings' answers, the packs it repacks; only the locks it
        # reads back (a few hundred bytes) and the answers of its second look's listings (a
        # KiB or two each) are not counted
        missed = done["requests"]["bytes_down"] - estimate["requests"]["bytes_down"]
        assert 0 <= missed < 8192, threshold
    # nothing left to do: the estimate downloads what the prune does, byte for byte
    dry = run_cli("prune", "--repo", s3_url, "--dry-run", "--json").json()
    done = run_cli("prune", "--repo", s3_url, "--json").json()
    assert done["packs_deleted"] + done["packs_repacked"] == 0
    assert dry["requests"]["bytes_down"] == done["requests"]["bytes_down"]


def test_the_model_counts_a_day_of_forget_and_prune(tmp_path, s3_url, run_cli):
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    for n in (2, 2, 1):  # the last day leaves d1 as it was: its pack is kept in part
        change(src, n)
        assert run_cli("backup", "--repo", s3_url, src).code == 0
    assert run_cli("forget", "--repo", s3_url, "--keep-last", "2").code == 0
    assert run_cli("prune", "--repo", s3_url, "--max-unused", "0%").code == 0  # one index
    change(src, 2)
    assert run_cli("backup", "--repo", s3_url, src).code == 0  # a day: one more index object
    names, _ = tree_packs(s3_url)
    log = NamedLog()
    logged(run_cli, log, "forget", "--repo", s3_url, "--keep-last", "2")
    prune = logged(run_cli, log, "prune", "--repo", s3_url, "--max-unused", "0%", "--json").json()
    assert prune["packs_repacked"] > 0 and prune["index_objects_replaced"] == 2
    packs = Counter(
        {
            # repacked, but for the tree packs this host keeps copies of (all of them: it
            # wrote them); planning reads its copies of the tree packs, not the store
            "get": prune["packs_repacked"] - prune["repacked_from_copies"],
            "put": prune["packs_written"],
            "delete": prune["packs_deleted"] + prune["packs_repacked"] + prune["orphan_packs"],
        }
    )
    assert (
        sum(n for (k, p), n in log.by_prefix.items() if p == "data" and k == "get")
        == (packs["get"])
    )
    others = {k: log.kinds[k] - packs[k] for k in ("list", "get", "put", "delete")}
    assert 0 < prune["repacked_from_copies"] < prune["packs_repacked"]
    expected = model.maintenance_requests(snapshots=2, index_objects=1, packs=prune["packs_total"])
    assert others == expected
    # a host without those copies reads every snapshot, index object and tree pack
    cold = model.maintenance_requests(2, 1, len(names), prune["packs_total"], copies=False)
    assert cold["get"] == (2 + 2 + 1) + (4 + 2 + 1 + len(names))


def test_operation_records_round_trip_and_are_checked():
    t = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
    rec = OpRecord(
        t,
        "forget",
        "host",
        "cairn 0.2",
        {"put": 1, "get": 5},
        [RemovedBackup(t, {"put": 9, "bytes_up": 100}, 2)],
    )
    back = OpRecord.decode("ab", rec.encode())
    assert (back.time, back.command, back.requests["get"], back.requests["list"]) == (
        t,
        "forget",
        5,
        0,
    )
    assert back.removed == [
        RemovedBackup(t, {**dict.fromkeys(back.requests, 0), "put": 9, "bytes_up": 100}, 2)
    ]
    import msgpack

    for bad in (
        {"version": 2},
        {**msgpack.unpackb(rec.encode()), "time": "yesterday"},
        {**msgpack.unpackb(rec.encode()), "requests": {"put": -1}},
        {**msgpack.unpackb(rec.encode()), "removed": [{"time": t.isoformat()}]},
    ):
        with pytest.raises(RecordFormatError):
            OpRecord.decode("ab", msgpack.packb(bad))


def test_records_are_kept_by_prune_ignored_by_check_and_damage_is_reported(
    tmp_path, repo_path, run_cli
):
    src = make_tree(tmp_path / "src")
    url = str(repo_path)
    for _ in range(2):
        change(src, 2)
        assert run_cli("backup", "--repo", url, src).code == 0
    assert run_cli("forget", "--repo", url, "--keep-last", "1", "--prune").code == 0
    ops = repo_path / layout.OPERATIONS
    assert len(list(ops.iterdir())) == 1  # forget --prune: one record for both
    assert run_cli("prune", "--repo", url, "--max-unused", "0%").code == 0
    records = sorted(ops.iterdir())
    assert len(records) == 2  # the prune kept the forget's record, and wrote its own
    check = run_cli("check", "--repo", url, "--json")
    assert check.code == 0, check.out
    assert len(list(ops.iterdir())) == 2  # check writes none
    assert run_cli("repair", "index", "--repo", url).code == 0
    assert run_cli("repair", "snapshots", "--repo", url, "--dry-run").code == 0
    assert len(list(ops.iterdir())) == 3  # repair index records its run; a dry run does not
    records = sorted(ops.iterdir(), key=lambda p: p.stat().st_mtime)[:2]
    records[0].write_bytes(b"\x01" + bytes(60))  # damaged
    res = run_cli("cost", "--repo", url, "--month", "--json")
    assert res.code == 0, res.err
    doc = res.json()
    assert list(doc["damaged_records"]) == [records[0].name]
    assert doc["maintenance"]["commands"] == {"prune": 1, "repair index": 1}
    assert run_cli("check", "--repo", url).code == 0  # check says nothing about them


@pytest.mark.parametrize("bad", ["2026-13", "26-01", "november", "2026-1-1"])
def test_a_bad_month_is_one_line_and_no_request(tmp_path, repo_path, run_cli, bad):
    res = run_cli("cost", "--repo", str(repo_path), "--month", bad)
    assert res.code != 0
    assert res.err.strip().count("\n") == 0 and "--month" in res.err


def test_the_month_prices_a_prune_at_the_classes_of_the_packs_it_removed(tmp_path, s3_url, run_cli):
    """A prune that reads back and deletes STANDARD_IA packs: its record keeps their classes
    and dates, so the month has their retrieval, the fee for deleting them before 30 days, and
    their storage until the prune, as the prune's own estimate priced them."""
    src = make_tree(tmp_path / "src")
    assert run_cli("init", "--repo", s3_url, "--pack-size", "128K").code == 0
    for day in range(3):
        change(src, day + 2)
        args = ("backup", "--repo", s3_url, src, "--storage-class", "STANDARD_IA")
        assert run_cli(*args).code == 0
    assert run_cli("forget", "--repo", s3_url, "--keep-last", "1").code == 0
    before = run_cli("cost", "--repo", s3_url, "--month", "--json").json()
    prune = ("prune", "--repo", s3_url, "--max-unused", "0%", "--storage-class", "STANDARD_IA")
    dry = run_cli(*prune, "--dry-run", "--json").json()["cost"]["charges"]
    assert dry["retrieval"] > 0 and dry["early_deletion"] > 0
    assert run_cli(*prune).code == 0
    doc = run_cli("cost", "--repo", s3_url, "--month", "--json").json()
    m = doc["maintenance"]["charges"]
    assert m["retrieval"] == pytest.approx(dry["retrieval"], rel=1e-9)
    assert m["early_deletion"] == pytest.approx(dry["early_deletion"], rel=1e-3)
    # the packs it deleted stay in the month's storage until the prune
    assert doc["storage"]["average_bytes"] >= before["storage"]["average_bytes"]
    # records without classes (forget's) still price everything at the default class
    assert m["requests"] > 0


def test_records_keep_classes_and_deleted_objects():
    t = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
    gone = DeletedObject("STANDARD_IA", 41 << 20, t)
    rec = OpRecord(t, "prune", "host", requests={"get": 3}, classes={"STANDARD_IA": {"get": 2}})
    rec.deleted = [gone]
    back = OpRecord.decode("ab", rec.encode())
    assert back.classes["STANDARD_IA"]["get"] == 2 and back.deleted == [gone]
    import msgpack

    raw = msgpack.unpackb(rec.encode())
    for bad in ({**raw, "deleted": [["STANDARD_IA", -1, t.isoformat()]]}, {**raw, "classes": []}):
        with pytest.raises(RecordFormatError):
            OpRecord.decode("ab", msgpack.packb(bad))


def test_storage_by_month_from_snapshots_and_records() -> None:
    from cairn.model.snapshot import Snapshot, Summary
    from cairn.ops.cost.month import storage_by_month
    from cairn.ops.oprecords import RECORD_BYTES

    def snap(month: int, stored: int) -> Snapshot:
        return Snapshot(datetime(2026, month, 10, tzinfo=UTC), "h", "u", ["/"], b"",
                        summary=Summary(bytes_stored=stored))  # fmt: skip

    when = datetime(2026, 4, 2, tzinfo=UTC)
    prune = OpRecord(
        when, "prune", "h", requests={"bytes_up": 100},
        deleted=[DeletedObject("STANDARD", 700, datetime(2026, 1, 10, tzinfo=UTC))],
    )  # fmt: skip
    forget = OpRecord(
        datetime(2026, 3, 30, tzinfo=UTC), "forget", "h",
        removed=[RemovedBackup(datetime(2026, 2, 10, tzinfo=UTC), {"bytes_up": 50})],
    )  # fmt: skip
    months = storage_by_month(
        [snap(1, 1000), snap(3, 200)], [prune, forget], datetime(2026, 6, 1, tzinfo=UTC)
    )
    r = RECORD_BYTES
    assert [(m.name, n) for m, n in months] == [
        ("2026-01", 1000),
        ("2026-02", 1050),  # the backup forget removed since, as its record kept it
        ("2026-03", 1250 + r),
        ("2026-04", 1250 + r + 100 + r - 700),  # the prune wrote 100, deleted 700
        ("2026-05", 650 + 2 * r),
        ("2026-06", 650 + 2 * r),
    ]
    assert [m.name for m, _ in storage_by_month([snap(1, 1)], [], months[-1][0].start, 2)] == [
        "2026-05",
        "2026-06",
    ]
    assert storage_by_month([], [], when) == []
