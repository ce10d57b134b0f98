"""The commands and options restic users reach for, through the command line: find, diff,
tag, and snapshots --latest / --compact."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cairn.ops import diff as diff_ops
from cairn.repo import layout
from cairn.repo.locks import Locks
from cairn.repo.repository import Repository
from cairn.storage.local import LocalStorage
from tests.conftest import FAST_KDF, PASSWORD

T2020 = 1_577_880_000  # 2020-01-01 12:00 UTC
T2022 = 1_641_038_400  # 2022-01-01 12:00 UTC


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    Repository.create(LocalStorage(path), PASSWORD.encode(), pack_size=1 << 20, kdf=FAST_KDF)
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "docs" / "old").mkdir(parents=True)
    (root / "same" / "deep").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha\n")
    (root / "docs" / "old" / "b.txt").write_text("beta\n")
    (root / "docs" / "c.pdf").write_bytes(os.urandom(5000))
    (root / "same" / "deep" / "keep.txt").write_text("unchanged\n")
    os.utime(root / "docs" / "old" / "b.txt", (T2020, T2020))
    os.utime(root / "docs" / "a.txt", (T2022, T2022))
    return root


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def backup(run_cli, repo: Path, *args: str | Path) -> dict:  # type: ignore[no-untyped-def]
    return ok(run_cli("backup", "--repo", repo, "--json", *args)).json()


def snapshots(run_cli, repo: Path, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return ok(run_cli("snapshots", "--repo", repo, "--json", *args)).json()  # type: ignore[no-any-return]


def diff_json(run_cli, repo: Path, *args: str) -> tuple[dict[str, str], dict]:  # type: ignore[no-untyped-def]
    """(path -> modifier, statistics) of `diff --json` (JSON lines)."""
    lines = [
        json.loads(x) for x in ok(run_cli("diff", "--repo", repo, "--json", *args)).out.splitlines()
    ]
    changes = {d["path"]: d["modifier"] for d in lines if d["message_type"] == "change"}
    stats = [d for d in lines if d["message_type"] == "statistics"]
    assert len(stats) == 1
    return changes, stats[0]


# ------------------------------------------------------------------ find
def found(run_cli, repo: Path, *args: str) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """snapshot id -> matching paths, from `find --json`."""
    doc = ok(run_cli("find", "--repo", repo, "--json", *args)).json()
    for group in doc:
        assert group["hits"] == len(group["matches"])
    return {g["snapshot"]: [m["path"] for m in g["matches"]] for g in doc}


def test_find_by_name_and_by_path_across_snapshots(repo, src, run_cli):
    first = backup(run_cli, repo, "--host", "alpha", src)
    (src / "docs" / "new.txt").write_text("new\n")
    second = backup(run_cli, repo, "--host", "beta", src)

    # a pattern without '/' matches names, anywhere
    hits = found(run_cli, repo, "*.txt")
    txt = [f"{src}/docs/a.txt", f"{src}/docs/old/b.txt", f"{src}/same/deep/keep.txt"]
    assert hits[first["id"]] == txt
    assert hits[second["id"]] == [f"{src}/docs/a.txt", f"{src}/docs/new.txt", *txt[1:]]
    # several patterns: any of them
    assert found(run_cli, repo, "c.pdf", "keep.txt")[first["id"]] == [
        f"{src}/docs/c.pdf",
        f"{src}/same/deep/keep.txt",
    ]
    # a pattern with '/' matches the path: anchored at '/', or any trailing part
    assert found(run_cli, repo, f"{src}/docs/*")[first["id"]] == [
        f"{src}/docs/a.txt",
        f"{src}/docs/c.pdf",
        f"{src}/docs/old",
    ]
    assert found(run_cli, repo, "old/*.txt")[first["id"]] == [f"{src}/docs/old/b.txt"]
    assert found(run_cli, repo, "docs/**/b.txt")[first["id"]] == [f"{src}/docs/old/b.txt"]
    # a name is not matched by a part of it
    assert found(run_cli, repo, "a.tx") == {first["id"]: [], second["id"]: []}

    # --snapshot (repeatable, with latest) and the filter options choose the snapshots
    assert set(found(run_cli, repo, "--snapshot", first["short_id"], "new.txt")) == {first["id"]}
    assert set(found(run_cli, repo, "-s", "latest", "-s", first["id"][:10], "x")) == {
        first["id"],
        second["id"],
    }
    assert set(found(run_cli, repo, "--host", "alpha", "*")) == {first["id"]}
    assert set(found(run_cli, repo, "--host", "alpha", "--snapshot", "latest", "*")) == {
        first["id"]
    }

    # the human listing: grouped by snapshot, with size and time, and a count
    res = ok(run_cli("find", "--repo", repo, "new.txt"))
    assert f"snapshot {second['short_id']}" in res.out
    assert first["short_id"] not in res.out
    line = [x for x in res.out.splitlines() if x.endswith("/docs/new.txt")]
    assert len(line) == 1 and " 4 " in line[0]  # its size
    assert "1 match in 2 snapshots" in res.out


def test_find_by_modification_time(repo, src, run_cli):
    snap = backup(run_cli, repo, src)["id"]

    def names(*args: str) -> list[str]:
        return [Path(p).name for p in found(run_cli, repo, "*.txt", *args)[snap]]

    assert names("--newest", "2021-01-01") == ["b.txt"]
    assert names("--oldest", "2021-01-01", "--newest", "2023-06-30 12:00") == ["a.txt"]
    assert names("--oldest", "2023-01-01 00:00:00") == ["keep.txt"]  # written by the test
    res = run_cli("find", "--repo", repo, "--newest", "yesterday", "x")
    assert res.code == 2 and "--newest" in res.err
    res = run_cli("find", "--repo", repo, "--oldest", "2022-01-01", "--newest", "2021-01-01", "x")
    assert res.code == 2 and "nothing can match" in res.err


def test_find_needs_a_pattern(repo, run_cli):
    res = run_cli("find", "--repo", repo)
    assert res.code == 2 and "PATTERN" in res.err


# ------------------------------------------------------------------ diff
def test_diff_lists_every_kind_of_change(repo, src, run_cli):
    old = backup(run_cli, repo, src)
    (src / "docs" / "a.txt").write_text("ALPHA\n")  # same size, same mtime: content differs
    os.utime(src / "docs" / "a.txt", (T2022, T2022))
    os.utime(src / "docs" / "old" / "b.txt", (T2022, T2022))  # only its mtime changes
    (src / "docs" / "c.pdf").unlink()
    (src / "docs" / "c.pdf").mkdir()  # a file becomes a directory
    (src / "docs" / "c.pdf" / "inside").write_text("in\n")
    (src / "new" / "sub").mkdir(parents=True)
    (src / "new" / "sub" / "n.bin").write_bytes(b"n" * 1000)
    os.chmod(src / "same", 0o700)  # metadata of a directory whose content is the same
    new = backup(run_cli, repo, src)

    changes, stats = diff_json(run_cli, repo, old["id"], new["short_id"])
    d = f"{src}/docs"
    assert changes == {
        f"{d}/a.txt": "M",
        f"{d}/c.pdf/": "T",
        f"{d}/c.pdf/inside": "+",
        f"{src}/new/": "+",
        f"{src}/new/sub/": "+",
        f"{src}/new/sub/n.bin": "+",
    }
    assert stats["source_snapshot"] == old["id"] and stats["target_snapshot"] == new["id"]
    assert stats["added"] == {"files": 2, "dirs": 2, "others": 0}
    assert stats["removed"] == {"files": 0, "dirs": 0, "others": 0}
    assert stats["modified"] == {"files": 1, "others": 0}
    assert stats["type_changed"] == 1
    assert stats["metadata_changed"] >= 2  # b.txt, same/ (and the directories above)
    assert stats["bytes_added"] == len("ALPHA\n") + len("in\n") + 1000
    assert stats["bytes_removed"] == len("alpha\n") + 5000

    # --metadata lists the entries whose metadata alone changed
    changes, _ = diff_json(run_cli, repo, "--metadata", old["id"], new["id"])
    assert changes[f"{d}/old/b.txt"] == "U"
    assert changes[f"{src}/same/"] == "U"
    assert f"{src}/same/deep/" not in changes

    # the other way round, added is removed
    changes, stats = diff_json(run_cli, repo, new["id"], old["id"])
    assert changes[f"{src}/new/sub/n.bin"] == "-" and changes[f"{d}/a.txt"] == "M"
    assert stats["removed"] == {"files": 2, "dirs": 2, "others": 0}

    # the human output
    res = ok(run_cli("diff", "--repo", repo, old["id"], "latest"))
    assert f"comparing snapshot {old['short_id']} to {new['short_id']}:" in res.out
    assert f"M    {d}/a.txt\n" in res.out
    assert f"+    {src}/new/\n" in res.out
    assert "U    " not in res.out
    assert "Files:        2 new,      0 removed,      1 modified" in res.out
    assert "Added:   " in res.out and "Removed: " in res.out

    # a snapshot against itself: nothing
    changes, stats = diff_json(run_cli, repo, "--metadata", new["id"], new["id"])
    assert changes == {} and stats["bytes_added"] == stats["bytes_removed"] == 0


def test_diff_skips_subtrees_that_are_the_same(repo, src, run_cli, monkeypatch):
    old = backup(run_cli, repo, src)
    (src / "docs" / "a.txt").write_text("changed, longer\n")
    new = backup(run_cli, repo, src)
    read = []
    real = diff_ops.read_listing

    def listing(repo, tree_id, path, *args, **kw):  # type: ignore[no-untyped-def]
        read.append(path)
        return real(repo, tree_id, path, *args, **kw)

    monkeypatch.setattr(diff_ops, "read_listing", listing)
    changes, stats = diff_json(run_cli, repo, old["id"], new["id"])
    assert changes == {f"{src}/docs/a.txt": "M"}
    assert stats["bytes_added"] == len("changed, longer\n")
    # the directories on the way to the change, each side once; never same/ nor docs/old/
    assert not [p for p in read if p.endswith((b"/same", b"/deep", b"/old"))]
    assert read.count(os.fsencode(src / "docs")) == 2


def test_diff_of_unknown_snapshots_is_a_clear_error(repo, src, run_cli):
    backup(run_cli, repo, src)
    res = run_cli("diff", "--repo", repo, "latest", "0123abcd")
    assert res.code != 0 and "0123abcd" in res.err and "Traceback" not in res.err


# ------------------------------------------------------------------ tag
def test_tag_add_remove_set_writes_new_snapshots(repo, src, run_cli):
    a = backup(run_cli, repo, "--host", "alpha", "--tag", "daily", src)
    b = backup(run_cli, repo, "--host", "beta", src)

    res = ok(run_cli("tag", "--repo", repo, "--add", "keep,offsite", a["short_id"]))
    [now_a, now_b] = snapshots(run_cli, repo)
    assert now_b["id"] == b["id"]  # untouched
    assert now_a["id"] != a["id"]  # a new object, as in restic
    assert now_a["tags"] == ["daily", "keep", "offsite"]
    assert now_a["original"] == a["id"]
    assert (now_a["time"], now_a["tree"], now_a["paths"]) == (a["time"], a["tree"], a["paths"])
    assert not (repo / "snapshots" / a["id"]).exists()
    assert f"{a['short_id']} -> {now_a['short_id']}" in res.out
    assert "changed 1 snapshot, 0 already so" in res.out

    # --remove, by the filter options (no id: every snapshot they select)
    doc = ok(
        run_cli("tag", "--repo", repo, "--json", "--host", "alpha", "--remove", "daily")
    ).json()
    [change] = doc["changed"]
    assert change["old"] == now_a["id"] and change["tags"] == ["keep", "offsite"]
    renamed = snapshots(run_cli, repo, "--host", "alpha")[0]
    assert renamed["id"] == change["new"]
    assert renamed["original"] == a["id"]  # the first one, still

    # --set on latest; a snapshot that already has the tags is left alone
    ok(run_cli("tag", "--repo", repo, "--set", "x", "--set", "y", "latest"))
    assert snapshots(run_cli, repo, "--host", "beta")[0]["tags"] == ["x", "y"]
    res = ok(run_cli("tag", "--repo", repo, "--json", "--add", "x", "--tag", "x"))
    assert res.json()["changed"] == [] and len(res.json()["unchanged"]) == 1
    ok(run_cli("tag", "--repo", repo, "--set", "", "--tag", "x"))
    assert snapshots(run_cli, repo, "--host", "beta")[0]["tags"] == []

    # a dry run writes nothing
    before = sorted(p.name for p in (repo / "snapshots").iterdir())
    res = ok(run_cli("tag", "--repo", repo, "--dry-run", "--add", "z"))
    assert "would change 2 snapshots" in res.out
    assert sorted(p.name for p in (repo / "snapshots").iterdir()) == before

    # no lock is left, the repository checks clean, and a prune keeps the data
    assert not list((repo / "locks").iterdir())
    ok(run_cli("check", "--repo", repo))
    ok(run_cli("prune", "--repo", repo))
    ok(
        run_cli(
            "restore", "--repo", repo, "--host", "alpha", "latest", "--target", repo.parent / "out"
        )
    )
    assert (repo.parent / "out" / str(src).lstrip("/") / "docs" / "a.txt").read_text() == "alpha\n"


def test_tag_writes_under_a_backup_lock(repo, src, run_cli, monkeypatch):
    """The new snapshot is written while a `backup` lock is held (docs/format.md §12), so a
    prune running at the same time waits for it and then reads the new snapshot."""
    backup(run_cli, repo, src)
    seen = []
    real = Repository.save_snapshot

    def save(self, plaintext):  # type: ignore[no-untyped-def]
        seen.append([lock.kind for lock in Locks(self).read_all()])
        return real(self, plaintext)

    monkeypatch.setattr(Repository, "save_snapshot", save)
    ok(run_cli("tag", "--repo", repo, "--add", "t", "latest"))
    assert seen == [["backup"]]
    assert not list((repo / layout.LOCKS.rstrip("/")).iterdir())


def test_tag_usage_errors(repo, src, run_cli):
    backup(run_cli, repo, src)
    before = sorted(p.name for p in (repo / "snapshots").iterdir())
    for args, message in (
        ((), "nothing to do"),
        (("--set", "a", "--add", "b"), "--set"),
        (("--add", "a", "nosuchid"), "nosuchid"),
        (("--add", "a", "--host", "nobody", "latest"), "no snapshot"),
    ):
        res = run_cli("tag", "--repo", repo, *args)
        assert res.code != 0, args
        assert message in res.err, (args, res.err)
        assert "Traceback" not in res.err
    assert sorted(p.name for p in (repo / "snapshots").iterdir()) == before


# ------------------------------------------------------------------ snapshots
def test_snapshots_latest_per_host_and_paths(repo, src, tmp_path, run_cli):
    other = tmp_path / "other"
    other.mkdir()
    made = [
        backup(run_cli, repo, "--host", host, path)["id"]
        for host, path in (("a", src), ("a", src), ("a", other), ("b", src), ("a", src), ("b", src))
    ]
    assert [s["id"] for s in snapshots(run_cli, repo, "--latest", "1")] == [
        made[2],
        made[4],
        made[5],
    ]
    assert [s["id"] for s in snapshots(run_cli, repo, "--latest", "2")] == made[1:]
    assert [s["id"] for s in snapshots(run_cli, repo, "--latest", "1", "--host", "a")] == [
        made[2],
        made[4],
    ]
    res = run_cli("snapshots", "--repo", repo, "--latest", "0")
    assert res.code == 2


def test_snapshots_compact_and_counts(repo, src, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    res = ok(run_cli("snapshots", "--repo", repo))
    assert "0 snapshots" in res.out
    deep = tmp_path / ("a-rather-long-directory-name-" * 3) / "and-deeper"
    deep.mkdir(parents=True)
    first = backup(run_cli, repo, "--tag", "daily,offsite", src, deep)
    res = ok(run_cli("snapshots", "--repo", repo))
    assert "1 snapshot\n" in res.out
    second = backup(run_cli, repo, "--host", "h", src)

    res = ok(run_cli("snapshots", "--repo", repo, "--compact"))
    lines = res.out.splitlines()
    assert lines[0].split() == ["ID", "Time", "Host", "Tags"]
    assert lines[1].startswith(first["short_id"]) and lines[1].endswith("daily,offsite")
    assert lines[2].startswith(second["short_id"]) and " h" in lines[2]
    assert lines[3] == "2 snapshots"
    assert len(lines) == 4
    assert all(len(line) <= 80 for line in lines)
