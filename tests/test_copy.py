"""cairn copy: snapshots into another repository (other password, other store), only what it
lacks sent, a snapshot copied once, an interrupted copy resumed, and the copy job kind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.model.node import DIR, FILE, Node, encode_tree
from cairn.ops.copy.reads import RUN_BYTES, plan_runs
from cairn.ops.copy.trees import TreeRead, TreeSpool
from cairn.repo.index import IndexEntry, PackInfo
from cairn.storage.s3config import S3Location
from tests.conftest import CAIRN
from tests.treecmp import describe, diff

MIB = 1 << 20
OTHER = "another-password"
DIRS = 40


def make_tree(root: Path, seed: int = 0) -> Path:
    (root / "docs" / "deep").mkdir(parents=True)
    for i in range(20):
        (root / "docs" / f"note{i}.txt").write_text(f"note {i} {seed}\n" * (i * 40 + 1))
    (root / "docs" / "deep" / "big.bin").write_bytes(os.urandom(3 * MIB))
    (root / "same").mkdir()  # the same directory twice: one tree, walked once
    (root / "same" / "x.txt").write_text("x\n")
    (root / "again").mkdir()
    (root / "again" / "x.txt").write_text("x\n")
    os.utime(root / "same" / "x.txt", ns=(1, 1))
    os.utime(root / "again" / "x.txt", ns=(1, 1))
    os.symlink("docs/note1.txt", root / "link")
    os.chmod(root / "docs" / "note3.txt", 0o600)
    for i in range(DIRS):
        (root / "many" / f"d{i}").mkdir(parents=True)
        (root / "many" / f"d{i}" / "f").write_text(f"{i}\n")
    return root


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, res.err
    return res


def snapshots(run_cli, repo) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return ok(run_cli("snapshots", "-r", repo, "--json")).json()  # type: ignore[no-any-return]


def restored(run_cli, repo, snap: str, target: Path, path: Path) -> dict:  # type: ignore[no-untyped-def,type-arg]
    ok(run_cli("restore", "-r", repo, snap, "--target", target))
    return describe(target / str(path).lstrip("/"))


def object_names(s3_server, url: str) -> list[str]:  # type: ignore[no-untyped-def]
    where = S3Location.parse(url)
    client = s3_server.client()
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=where.bucket, Prefix=where.prefix
    )
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def test_local_to_s3_with_another_password(
    tmp_path: Path, s3_url: str, s3_server, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    src_repo = tmp_path / "src-repo"
    data = make_tree(tmp_path / "data")
    ok(run_cli("init", "-r", src_repo))
    ok(run_cli("backup", "-r", src_repo, data, "--host", "laptop"))
    first = describe(data)
    (data / "docs" / "note2.txt").write_text("changed\n")
    (data / "docs" / "new.bin").write_bytes(os.urandom(MIB))
    ok(run_cli("backup", "-r", src_repo, data, "--host", "laptop", "--tag", "daily"))
    second = describe(data)
    ok(run_cli("backup", "-r", src_repo, data / "docs", "--host", "server"))
    src_snaps = snapshots(run_cli, src_repo)

    monkeypatch.setenv("CAIRN_FROM_PASSWORD", os.environ["CAIRN_PASSWORD"])
    monkeypatch.setenv("CAIRN_PASSWORD", OTHER)
    ok(run_cli("init", "-r", s3_url, "--pack-size", "1M"))
    one = ok(run_cli("copy", "-r", s3_url, "--from-repo", src_repo, "--host", "laptop", "--json"))
    doc = one.json()
    assert doc["copied"] == 2 and [s["source"] for s in doc["snapshots"]] == [
        s["id"] for s in src_snaps[:2]
    ]
    assert doc["snapshots"][1]["bytes_read"] < doc["snapshots"][0]["bytes_read"]
    assert doc["source_requests"]["get"] >= 1 and doc["requests"]["put"] >= 3
    assert "source" not in doc["cost"]  # a local directory: nothing billed
    assert doc["cost"]["destination"]["cost"] > 0 and doc["cost"]["destination"]["adds_month"] > 0
    copies = snapshots(run_cli, s3_url)
    assert [c["original"] for c in copies] == [s["id"] for s in src_snaps[:2]]
    assert copies[1]["parent"] == copies[0]["id"]  # the copy of its parent
    assert [c["tags"] for c in copies] == [[], ["daily"]]
    assert [c["host"] for c in copies] == ["laptop", "laptop"]
    # the backups' requests were the source store's: the copy's are in its operation record
    assert src_snaps[0]["summary"]["requests"] and copies[0]["summary"]["requests"] == {}
    assert copies[0]["summary"]["files_new"] == src_snaps[0]["summary"]["files_new"]

    everything = ok(run_cli("copy", "-r", s3_url, "--from-repo", src_repo, "--json")).json()
    assert everything["copied"] == 1
    assert [s["present"] is not None for s in everything["snapshots"]] == [True, True, False]
    names = object_names(s3_server, s3_url)
    again = ok(run_cli("copy", "-r", s3_url, "--from-repo", src_repo, "--json")).json()
    assert again["copied"] == 0 and again["requests"].get("put", 0) == 0
    assert object_names(s3_server, s3_url) == names  # a second copy adds nothing at all

    ok(run_cli("check", "-r", s3_url, "--read-data"))
    copies = snapshots(run_cli, s3_url)
    assert diff(first, restored(run_cli, s3_url, copies[0]["id"], tmp_path / "r0", data)) == []
    assert diff(second, restored(run_cli, s3_url, copies[1]["id"], tmp_path / "r1", data)) == []

    # copies do not come back: each is a copy of a snapshot the source has
    monkeypatch.setenv("CAIRN_PASSWORD", os.environ["CAIRN_FROM_PASSWORD"])
    monkeypatch.setenv("CAIRN_FROM_PASSWORD", OTHER)
    back = ok(run_cli("copy", "-r", src_repo, "--from-repo", s3_url, "--json")).json()
    assert back["copied"] == 0 and len(back["snapshots"]) == 3


def test_s3_to_s3_with_shared_chunker_reads_only_what_is_new(
    tmp_path: Path, s3_server, s3_env, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    tag = os.urandom(4).hex()
    src_url, dst_url = s3_server.url(f"copy-src-{tag}"), s3_server.url(f"copy-dst-{tag}")
    data = make_tree(tmp_path / "data")
    ok(run_cli("init", "-r", src_url, "--pack-size", "1M"))
    ok(run_cli("backup", "-r", src_url, data))
    monkeypatch.setenv("CAIRN_FROM_PASSWORD", os.environ["CAIRN_PASSWORD"])
    monkeypatch.setenv("CAIRN_PASSWORD", OTHER)
    ok(run_cli("init", "-r", dst_url, "--copy-chunker-params", "--from-repo", src_url))
    first = ok(run_cli("copy", "-r", dst_url, "--from-repo", src_url, "--json")).json()
    assert first["copied"] == 1 and first["bytes_read"] > 3 * MIB

    (data / "docs" / "note5.txt").write_text("a small change\n")
    monkeypatch.setenv("CAIRN_PASSWORD", os.environ["CAIRN_FROM_PASSWORD"])
    ok(run_cli("backup", "-r", src_url, data))
    monkeypatch.setenv("CAIRN_PASSWORD", OTHER)
    second = ok(run_cli("copy", "-r", dst_url, "--from-repo", src_url, "--json")).json()
    assert second["copied"] == 1
    # the same ids: what the destination has is not even read
    assert second["bytes_read"] < 64 << 10 and second["data_blobs"] == 1
    # every tree is walked, a tree pack at a time: far fewer reads than directories
    assert second["source_requests"]["get"] < DIRS // 2, second["source_requests"]
    assert second["blobs_present"] >= 4

    # and the destination's own backup of the same files deduplicates against the copies
    own = ok(run_cli("backup", "-r", dst_url, data, "--json")).json()["summary"]
    assert own["data_blobs_added"] == 0
    ok(run_cli("check", "-r", dst_url, "--read-data"))
    latest = describe(data)
    assert diff(latest, restored(run_cli, dst_url, "latest", tmp_path / "r", data)) == []


def test_an_interrupted_copy_resumes_without_sending_again(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    src_repo, dst_repo = tmp_path / "src-repo", tmp_path / "dst-repo"
    data = tmp_path / "data"
    data.mkdir()
    for i in range(8):
        (data / f"f{i}.bin").write_bytes(os.urandom(MIB))
    ok(run_cli("init", "-r", src_repo))
    ok(run_cli("backup", "-r", src_repo, data))
    env = {**os.environ, "CAIRN_FROM_PASSWORD": os.environ["CAIRN_PASSWORD"]}
    ok(run_cli("init", "-r", dst_repo, "--pack-size", "1M"))
    dst_id = json.loads(run_cli("cat", "-r", dst_repo, "config").out)["id"]
    journal = Path(os.environ["CAIRN_CACHE_DIR"]) / dst_id / "pending-packs"
    copy = [*CAIRN, "copy", "-r", str(dst_repo), "--from-repo", str(src_repo), "--json"]
    proc = subprocess.Popen([*copy, "--limit-upload", "512"], env=env, stdout=subprocess.PIPE)
    try:
        for _ in range(600):  # until the copy has stored two packs (or ended, which fails below)
            if (journal.exists() and journal.stat().st_size > 300) or proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the copy ended before it could be interrupted"
    assert snapshots(run_cli, dst_repo) == []
    stored_before = sum(p.stat().st_size for p in (dst_repo / "data").rglob("*") if p.is_file())
    assert stored_before >= MIB // 2

    rerun = subprocess.run(copy, env=env, capture_output=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    doc = json.loads(rerun.stdout)
    assert doc["copied"] == 1
    assert doc["bytes_stored"] <= 8.1 * MIB - stored_before  # the packs stored are adopted
    packs = [p for p in (dst_repo / "data").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in packs) < 8.5 * MIB  # nothing stored twice
    ok(run_cli("check", "-r", dst_repo, "--read-data"))
    assert diff(describe(data), restored(run_cli, dst_repo, "latest", tmp_path / "r", data)) == []


def test_refusals_leave_the_destination_as_it_was(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    src_repo, dst_repo = tmp_path / "src-repo", tmp_path / "dst-repo"
    data = make_tree(tmp_path / "data")
    ok(run_cli("init", "-r", src_repo))
    ok(run_cli("backup", "-r", src_repo, data))
    ok(run_cli("init", "-r", dst_repo))

    def files() -> list[str]:
        return sorted(str(p) for p in dst_repo.rglob("*"))

    before = files()
    nopass = run_cli("copy", "-r", dst_repo, "--from-repo", src_repo)
    assert nopass.code == 2 and "CAIRN_FROM_PASSWORD" in nopass.err
    monkeypatch.setenv("CAIRN_FROM_PASSWORD", os.environ["CAIRN_PASSWORD"])
    same = run_cli("copy", "-r", src_repo, "--from-repo", src_repo)
    assert same.code == 2 and "same repository" in same.err and len(same.err.splitlines()) == 1
    monkeypatch.setenv("CAIRN_FROM_PASSWORD", "wrong")
    wrong = run_cli("copy", "-r", dst_repo, "--from-repo", src_repo)
    assert wrong.code != 0 and len(wrong.err.strip().splitlines()) == 1
    monkeypatch.setenv("CAIRN_FROM_PASSWORD", os.environ["CAIRN_PASSWORD"])
    nowhere = run_cli("copy", "-r", dst_repo)
    assert nowhere.code != 0 and "--from-repo" in nowhere.err
    missing = run_cli("copy", "-r", dst_repo, "--from-repo", tmp_path / "nothing-here")
    assert missing.code != 0 and len(missing.err.strip().splitlines()) == 1
    unknown = run_cli("copy", "-r", dst_repo, "--from-repo", src_repo, "deadbeef")
    assert unknown.code != 0
    assert files() == before
    alone = run_cli("init", "-r", tmp_path / "new", "--copy-chunker-params")
    assert alone.code != 0 and "--from-repo" in alone.err
    assert not (tmp_path / "new").exists()


def test_a_copy_job_keeps_a_second_repository_in_step(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    main, offsite = tmp_path / "main", tmp_path / "offsite"
    data = make_tree(tmp_path / "data")
    ok(run_cli("init", "-r", main))
    ok(run_cli("init", "-r", offsite))
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[repositories.main]\nurl = "{main}"\npassword-env = "CAIRN_PASSWORD"\n'
        f'[repositories.offsite]\nurl = "{offsite}"\npassword-env = "CAIRN_PASSWORD"\n'
        f'[jobs.home]\nrepository = "main"\npaths = ["{data}"]\n'
        '[jobs.second]\ncopy-from = "main"\nrepository = "offsite"\ntags = ["job:home"]\n'
    )
    first = ok(run_cli("run", "--config", cfg, "--json")).json()["jobs"]
    assert [j["status"] for j in first] == ["ok", "ok"]
    assert first[1]["copy"]["copied"] == 1
    ok(run_cli("backup", "-r", main, data / "docs"))  # not the job's: not copied
    again = ok(run_cli("run", "--config", cfg, "second", "--json")).json()["jobs"][0]
    assert again["copy"]["copied"] == 0 and again["copy"]["chosen"] == 1
    human = ok(run_cli("run", "--config", cfg, "home", "second"))
    assert "copied 1 snapshot of 2 from main" in human.out
    assert [s["original"] for s in snapshots(run_cli, offsite)] == [
        s["id"] for s in snapshots(run_cli, main) if "job:home" in s["tags"]
    ]

    third = tmp_path / "third"
    ok(run_cli("init", "-r", third))
    cfg.write_text(cfg.read_text() + f'[repositories.third]\nurl = "{third}"\n')
    args = ("copy", "--config", cfg, "-r", "@third", "--from-repo", "@offsite", "--json")
    named = ok(run_cli(*args)).json()
    assert named["copied"] == len(snapshots(run_cli, offsite)) == 2
    assert named["source"] == str(offsite)

    jobs = cfg.read_text().replace(
        'tags = ["job:home"]\n', 'tags = ["job:home"]\npaths = ["/srv"]\n'
    )
    cfg.write_text(jobs)
    bad = run_cli("run", "--config", cfg)
    assert bad.code != 0 and "paths" in bad.err and "copy job" in bad.err


# ---------------------------------------------------------------------- units
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 3 * MIB), st.integers(0, 600 << 10)),
        max_size=60,
    )
)
def test_runs_read_every_wanted_blob_once_within_their_pack(blobs) -> None:  # type: ignore[no-untyped-def]
    packs = [PackInfo(bytes([n]) * 32, b"s" * 16, 0) for n in range(4)]
    wanted, ends = [], [0, 0, 0, 0]
    for i, (pack, length, gap) in enumerate(blobs):
        offset = ends[pack] + gap
        ends[pack] = offset + length
        wanted.append((i.to_bytes(32, "big"), IndexEntry(packs[pack], offset, length, length)))
    runs = plan_runs(wanted)
    seen = [ref.id for run in runs for ref in run.blobs]
    assert sorted(seen) == sorted(b for b, _ in wanted)
    for run in runs:
        assert run.blobs == tuple(sorted(run.blobs, key=lambda r: r.offset))
        assert run.offset == run.blobs[0].offset
        assert run.offset + run.length == run.blobs[-1].offset + run.blobs[-1].length
        assert run.length <= RUN_BYTES or len(run.blobs) == 1
        for ref in run.blobs:
            entry = dict(wanted)[ref.id]
            assert entry.pack == run.pack and entry.offset == ref.offset


def test_trees_are_given_back_after_every_tree_below_them() -> None:
    def tree(tid: int, *children: int) -> TreeRead:
        nodes = [Node(f"d{c}".encode(), DIR, subtree=bytes([c]) * 32) for c in children]
        nodes.append(Node(b"f", FILE))
        return TreeRead(bytes([tid]) * 32, b"", encode_tree(nodes), nodes)

    # 1 holds 2 and 3; 2 holds 4; 3 holds 4 too (walked once, under 2); 9 is not kept
    walk_order = [tree(1, 2, 3), tree(2, 4), tree(4), tree(3, 4, 9)]
    with TreeSpool() as spool:
        for t in walk_order:
            spool.add(t)
        order = [t.id[0] for t in spool.children_first()]
    assert sorted(order) == [1, 2, 3, 4]
    assert order.index(4) < order.index(2) < order.index(1)
    assert order.index(4) < order.index(3) < order.index(1)
