"""One damaged snapshot object must not stop a repository: every command that lists snapshots
skips it with a warning naming it, `check` reports it, and `forget ID` or `repair snapshots`
removes it. A prune refuses to delete anything while it is there (what it used is unknown)."""

from __future__ import annotations

import json

import pytest

from tests.craft import flip_bit
from tests.test_prune import write_files
from tests.treecmp import describe, diff

MIB = 1 << 20


@pytest.fixture
def damaged(tmp_path, run_cli):  # type: ignore[no-untyped-def]
    """A repository of three snapshots of ``src``, the middle one's object damaged."""
    repo = tmp_path / "repo"
    src = tmp_path / "src"
    write_files(src, ["a"], size=MIB)
    assert run_cli("init", "--repo", repo).code == 0
    for name in ("b", "c", "d"):
        write_files(src, [name], size=MIB // 4)
        assert run_cli("backup", "--repo", repo, src).code == 0
    ids = [s["id"] for s in run_cli("snapshots", "--repo", repo, "--json").json()]
    bad = ids[1]
    path = repo / "snapshots" / bad
    flip_bit(path, path.stat().st_size // 2, bit=4)
    return repo, src, ids, bad


def test_commands_that_list_snapshots_skip_a_damaged_one_with_a_warning(damaged, tmp_path, run_cli):
    repo, src, ids, bad = damaged
    res = run_cli("snapshots", "--repo", repo, "--json")
    assert res.code == 0, res.err
    assert [s["id"] for s in res.json()] == [ids[0], ids[2]]
    assert f"snapshots/{bad}" in res.err and "warning" in res.err

    write_files(src, ["e"], size=MIB // 4)
    res = run_cli("backup", "--repo", repo, src, "--json")
    assert res.code == 0, res.err
    assert res.json()["parent"] == ids[2]
    assert f"snapshots/{bad}" in res.err

    out = tmp_path / "out"
    res = run_cli("restore", "--repo", repo, f"latest:{src}", "--target", out)
    assert res.code == 0, res.err
    assert diff(describe(src), describe(out)) == []

    res = run_cli("forget", "--repo", repo, "--keep-last", "2", "--json")
    assert res.code == 0, res.err
    assert f"snapshots/{bad}" in res.err

    res = run_cli("ls", "--repo", repo, "latest")
    assert res.code == 0, res.err

    res = run_cli("check", "--repo", repo, "--json")
    assert res.code == 1
    bad_findings = [f for f in res.json()["findings"] if f["object"] == f"snapshots/{bad}"]
    assert bad_findings and bad_findings[0]["severity"] == "error"


def test_prune_refuses_while_a_snapshot_is_damaged_and_names_it(damaged, run_cli):
    repo, _src, _ids, bad = damaged
    before = sorted(p.name for p in (repo / "data").rglob("*") if p.is_file())
    res = run_cli("prune", "--repo", repo)
    assert res.code == 1
    assert f"snapshots/{bad}" in res.err and f"cairn forget {bad[:8]}" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert sorted(p.name for p in (repo / "data").rglob("*") if p.is_file()) == before


@pytest.mark.parametrize("how", ["forget", "repair"])
def test_a_damaged_snapshot_can_be_removed(damaged, run_cli, how):
    repo, _src, ids, bad = damaged
    if how == "forget":
        res = run_cli("forget", "--repo", repo, bad[:8])
    else:
        dry = run_cli("repair", "snapshots", "--repo", repo, "--dry-run")
        assert dry.code == 0 and "would be removed" in dry.out, dry.out
        assert (repo / "snapshots" / bad).exists()
        res = run_cli("repair", "snapshots", "--repo", repo)
    assert res.code == 0, res.err
    assert not (repo / "snapshots" / bad).exists()
    res = run_cli("check", "--repo", repo, "--read-data")
    assert res.code == 0, res.out + res.err
    res = run_cli("prune", "--repo", repo, "--json")
    assert res.code == 0, res.err
    assert [s["id"] for s in run_cli("snapshots", "--repo", repo, "--json").json()] == [
        ids[0],
        ids[2],
    ]
    assert json.loads(run_cli("check", "--repo", repo, "--json").out)["ok"]


def test_check_names_a_lock_it_cannot_read(tmp_path, run_cli):
    """Backups and prunes ignore a lock they cannot read (damaged, or written by a newer
    version): check says so, as a warning, without calling the repository damaged."""
    import msgpack

    from tests.craft import Crafter, open_repo

    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo).code == 0
    c = Crafter(open_repo(repo))
    try:
        future = c.raw_object("locks/", b"\x00" + msgpack.packb({"version": 99}))
    finally:
        c.close()
    (repo / "locks" / ("f" * 64)).write_bytes(b"not a lock at all")
    res = run_cli("check", "--repo", repo, "--json")
    assert res.code == 0, res.out + res.err
    findings = {f["object"]: f for f in res.json()["findings"]}
    for name in (future, "locks/" + "f" * 64):
        assert findings[name]["severity"] == "warning", findings
        assert "lock cannot be read" in findings[name]["message"]
