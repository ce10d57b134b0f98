"""cairn forget: policies through the command line (dry run with reasons, JSON, groups,
filters), explicit ids, real deletion of snapshot objects only, and --prune; on the local
backend and on the real SeaweedFS S3 server."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.model.node import encode_tree
from cairn.model.snapshot import Snapshot
from cairn.repo.layout import TREE_BLOB
from cairn.repo.locks import Locks, new_lock
from cairn.repo.repository import Repository
from cairn.storage.s3 import S3Storage
from tests.conftest import FAST_KDF, PASSWORD
from tests.treecmp import describe, diff
from tests.verify import verify_repository

MIB = 1 << 20

# (name, time in UTC, host, paths, tags). Nov 16 2026 is a Monday: all of it is ISO week 47.
HISTORY = [
    ("a1", "2026-11-16 09:00", "alpha", ("/home",), ()),
    ("a2", "2026-11-19 09:00", "alpha", ("/home",), ()),
    ("a3", "2026-11-20 08:00", "alpha", ("/home",), ("important",)),
    ("a4", "2026-11-20 21:00", "alpha", ("/home",), ()),
    ("b1", "2026-11-20 10:00", "beta", ("/srv",), ()),
    ("b2", "2026-11-21 10:00", "beta", ("/srv",), ()),
]
# --keep-daily 2 --keep-weekly 1 --keep-tag important, worked out by hand, newest first per group:
# alpha: a4 opens 11-20 and W47; a3 shares both but has the tag; a2 opens 11-19 (daily used
# up); a1 is left. beta: b2 opens 11-21 and W47; b1 opens 11-20.
EXPECTED = {
    ("alpha", ("/home",)): (
        {
            "a4": ["daily 2026-11-20", "weekly 2026-W47"],
            "a3": ["tag important"],
            "a2": ["daily 2026-11-19"],
        },
        ["a1"],
    ),
    ("beta", ("/srv",)): (
        {"b2": ["daily 2026-11-21", "weekly 2026-W47"], "b1": ["daily 2026-11-20"]},
        [],
    ),
}
POLICY = ("--keep-daily", "2", "--keep-weekly", "1", "--keep-tag", "important")

# For groups and filters, with --keep-last 1.
SPREAD = [
    ("p1", "2026-01-01 10:00", "alpha", ("/home",), ("x",)),
    ("p2", "2026-01-02 10:00", "alpha", ("/etc",), ()),
    ("p3", "2026-01-03 10:00", "alpha", ("/home",), ()),
    ("p4", "2026-01-04 10:00", "beta", ("/home",), ("x",)),
    ("p5", "2026-01-05 10:00", "beta", ("/home",), ("x",)),
]


@pytest.fixture(autouse=True)
def utc_and_wide(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Periods are counted in the local time zone: pin it. Wide tables: one line per row."""
    monkeypatch.setenv("COLUMNS", "250")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture(params=["local", "s3"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "repo")
    return str(request.getfixturevalue("s3_url"))


def make_repo(url: str) -> Repository:
    backend = backend_for(url, StoreOptions())
    if isinstance(backend, S3Storage):
        backend.create_bucket()
    else:
        Path(url).mkdir(parents=True)
    storage, _ = wrap_backend(backend, StoreOptions())
    return Repository.create(storage, PASSWORD.encode(), pack_size=MIB, kdf=FAST_KDF)


def add_history(repo: Repository, rows) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Snapshots of an empty directory at the given times; returns {name: snapshot id}."""
    with repo.writer() as writer:
        tree = writer.save_blob(TREE_BLOB, encode_tree([])).id
        writer.flush()
    ids = {}
    for name, when, host, paths, tags in rows:
        snap = Snapshot(
            time=datetime.fromisoformat(when).replace(tzinfo=UTC),
            host=host,
            user="u",
            paths=list(paths),
            tree=tree,
            tags=list(tags),
            program=name,
        )
        ids[name] = repo.save_snapshot(snap.encode())
    return ids


def objects(repo: Repository) -> dict[str, int]:
    return dict(repo.storage.list(""))


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def forget_json(run_cli, url: str, *args: str) -> dict:  # type: ignore[no-untyped-def]
    return ok(run_cli("forget", "--repo", url, "--json", *args)).json()


def names_of(ids: dict[str, str], snapshot_ids) -> set[str]:  # type: ignore[no-untyped-def]
    by_id = {v: k for k, v in ids.items()}
    return {by_id[i] for i in snapshot_ids}


def remaining(run_cli, url: str, ids: dict[str, str]) -> set[str]:  # type: ignore[no-untyped-def]
    res = ok(run_cli("snapshots", "--repo", url, "--json"))
    return names_of(ids, [s["id"] for s in res.json()])


# ------------------------------------------------------------------ policy, dry run, output
def test_dry_run_json_lists_every_snapshot_with_its_reasons(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    repo = make_repo(url)
    ids = add_history(repo, HISTORY)
    before = objects(repo)
    doc = forget_json(run_cli, url, *POLICY, "--dry-run")
    assert doc["dry_run"] is True
    assert doc["removed"] == 0 and doc["would_remove"] == 1 and doc["prune"] is None
    assert doc["policy"] == "keep 2 daily, 1 weekly, all tagged important"
    got = {
        (g["host"], tuple(g["paths"])): (
            {names_of(ids, [k["id"]]).pop(): k["reasons"] for k in g["keep"]},
            [names_of(ids, [r["id"]]).pop() for r in g["remove"]],
        )
        for g in doc["groups"]
    }
    assert got == EXPECTED
    assert [g["tags"] for g in doc["groups"]] == [None, None]  # not grouped by tags
    assert objects(repo) == before  # a dry run deletes nothing


def test_dry_run_human_output_is_a_table_per_group(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    ids = add_history(make_repo(url), HISTORY)
    res = ok(run_cli("forget", "--repo", url, *POLICY, "-n"))
    lines = res.out.splitlines()
    assert "policy: keep 2 daily, 1 weekly, all tagged important" in lines
    assert "host alpha, paths [/home]: keep 3, remove 1" in lines
    assert "host beta, paths [/srv]: keep 2, remove 0" in lines
    assert lines[-1] == "would remove 1 snapshot (dry run)"

    def row(name: str) -> list[str]:
        (line,) = [ln for ln in lines if ln.startswith(ids[name][:8])]
        return line.split()

    assert row("a4")[1:] == [
        "2026-11-20",
        "21:00:00",
        "alpha",
        "/home",
        "keep",
        "daily",
        "2026-11-20;",
        "weekly",
        "2026-W47",
    ]
    assert row("a3")[1:] == [
        "2026-11-20",
        "08:00:00",
        "alpha",
        "important",
        "/home",
        "keep",
        "tag",
        "important",
    ]
    assert row("a1")[1:] == ["2026-11-16", "09:00:00", "alpha", "/home", "remove"]
    # oldest first within a group, as `cairn snapshots` lists them
    order = [
        ln.split()[0] for ln in lines if ln[:8] in {ids[n][:8] for n in ("a1", "a2", "a3", "a4")}
    ]
    assert order == [ids[n][:8] for n in ("a1", "a2", "a3", "a4")]


def test_periods_follow_the_local_time_zone(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    ids = add_history(make_repo(url), HISTORY)
    # In Tokyo (UTC+9) a4 (Nov 20 21:00 UTC) is on Nov 21 and opens that day; a3 (17:00 JST)
    # then opens Nov 20 and uses up the daily count, so a2 is no longer kept.
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    doc = forget_json(run_cli, url, *POLICY, "--dry-run")
    alpha = doc["groups"][0]
    assert {names_of(ids, [k["id"]]).pop(): k["reasons"] for k in alpha["keep"]} == {
        "a4": ["daily 2026-11-21", "weekly 2026-W47"],
        "a3": ["tag important", "daily 2026-11-20"],
    }
    assert names_of(ids, [r["id"] for r in alpha["remove"]]) == {"a1", "a2"}


def test_forget_deletes_exactly_the_removed_snapshot_objects(url, run_cli):
    repo = make_repo(url)
    ids = add_history(repo, HISTORY)
    before = objects(repo)
    doc = forget_json(run_cli, url, *POLICY)
    assert doc["removed"] == 1 and doc["dry_run"] is False
    after = objects(repo)
    assert set(before) - set(after) == {f"snapshots/{ids['a1']}"}
    # nothing else changed; the run's operation record was added (format.md §8.1)
    records = {k for k in after if k.startswith("operations/")}
    assert len(records) == 1
    assert {k: v for k, v in before.items() if k in after} == {
        k: v for k, v in after.items() if k not in records
    }
    assert remaining(run_cli, url, ids) == {"a2", "a3", "a4", "b1", "b2"}
    # the same policy again keeps everything that is left (and records its run)
    again = forget_json(run_cli, url, *POLICY)
    later = objects(repo)
    assert again["removed"] == 0 and len(later) == len(after) + 1
    assert {k: v for k, v in later.items() if k in after} == after


def test_keep_within_and_keep_last_through_the_cli(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    ids = add_history(make_repo(url), HISTORY)
    doc = forget_json(run_cli, url, "--keep-within", "1d12h", "--keep-last", "1", "-n")
    # alpha's newest is a4 (11-20 21:00): within 1d12h means after 11-19 09:00, so a2 (exactly
    # then) is out. beta's newest is b2 (11-21 10:00): after 11-19 22:00, b1 is in.
    keep = {names_of(ids, [k["id"]]).pop(): k["reasons"] for g in doc["groups"] for k in g["keep"]}
    assert keep == {
        "a4": ["within 1d12h", "last"],
        "a3": ["within 1d12h"],
        "b2": ["within 1d12h", "last"],
        "b1": ["within 1d12h"],
    }


def test_keep_within_daily_through_the_cli(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    ids = add_history(make_repo(url), HISTORY)
    doc = forget_json(run_cli, url, "--keep-within-daily", "2d", "-n")
    # alpha's newest is a4 (11-20 21:00): a4, a3 and a2 are within 2d, a3 shares a4's day.
    # beta's newest is b2 (11-21 10:00): b1 (11-20) is within 2d, on a day of its own.
    keep = {names_of(ids, [k["id"]]).pop(): k["reasons"] for g in doc["groups"] for k in g["keep"]}
    assert keep == {
        "a4": ["daily 2026-11-20 within 2d"],
        "a2": ["daily 2026-11-19 within 2d"],
        "b2": ["daily 2026-11-21 within 2d"],
        "b1": ["daily 2026-11-20 within 2d"],
    }
    assert doc["policy"] == "keep daily within 2d of the newest"


# ------------------------------------------------------------------ groups and filters
@pytest.mark.parametrize(
    ("args", "removed"),
    [
        ((), {"p1", "p4"}),
        (("--group-by", "host,paths"), {"p1", "p4"}),
        (("--group-by", "host"), {"p1", "p2", "p4"}),
        (("--group-by", "paths"), {"p1", "p3", "p4"}),
        (("--group-by", "tags"), {"p1", "p2", "p4"}),
        (("--group-by", "host,tags"), {"p2", "p4"}),
        (("--group-by", "hosts,tag"), {"p2", "p4"}),
        (("--group-by", "path"), {"p1", "p3", "p4"}),
        (("--group-by", ""), {"p1", "p2", "p3", "p4"}),
        (("--host", "alpha"), {"p1"}),
        (("--host", "beta"), {"p4"}),
        (("--tag", "x"), {"p4"}),
        (("--path", "/etc"), set()),
        (("--host", "alpha", "--group-by", "host"), {"p1", "p2"}),
    ],
)
def test_groups_and_filters(tmp_path, run_cli, args, removed):
    url = str(tmp_path / "repo")
    ids = add_history(make_repo(url), SPREAD)
    doc = forget_json(run_cli, url, "--keep-last", "1", *args)
    assert names_of(ids, [r["id"] for g in doc["groups"] for r in g["remove"]]) == removed
    assert remaining(run_cli, url, ids) == set(ids) - removed


def test_grouping_by_tags_reports_the_tags(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    add_history(make_repo(url), SPREAD)
    doc = forget_json(run_cli, url, "--keep-last", "1", "--group-by", "tags,host", "-n")
    assert [(g["host"], g["paths"], g["tags"]) for g in doc["groups"]] == [
        ("alpha", None, []),
        ("alpha", None, ["x"]),
        ("beta", None, ["x"]),
    ]


# ------------------------------------------------------------------ explicit ids
def test_explicit_ids_remove_exactly_those(url, run_cli):
    repo = make_repo(url)
    ids = add_history(repo, SPREAD)
    before = objects(repo)
    res = ok(run_cli("forget", "--repo", url, "--dry-run", ids["p2"][:10], ids["p4"]))
    assert "would remove 2 snapshots (dry run)" in res.out
    assert objects(repo) == before
    doc = forget_json(run_cli, url, ids["p2"][:10], ids["p4"], ids["p4"][:6])
    assert doc["removed"] == 2 and doc["policy"] is None
    assert set(before) - set(objects(repo)) == {f"snapshots/{ids['p2']}", f"snapshots/{ids['p4']}"}
    assert remaining(run_cli, url, ids) == {"p1", "p3", "p5"}


def test_a_bad_id_removes_nothing(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    repo = make_repo(url)
    ids = add_history(repo, SPREAD)
    before = objects(repo)
    res = run_cli("forget", "--repo", url, ids["p1"], "0123456789abcdef")
    assert res.code == 1 and "no snapshot with id 0123456789abcdef" in res.err
    res = run_cli("forget", "--repo", url, ids["p1"], "zz")
    assert res.code == 2 and "not a snapshot id" in res.err
    assert objects(repo) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no policy"),
        (("--keep-daily", "0"), "no policy"),
        (("--group-by", "host"), "no policy"),
        (("--keep-last", "1", "ID"), "not both"),
        (("--group-by", "host", "ID"), "not both"),
        (("--host", "alpha", "ID"), "select snapshots for a policy"),
        (("--keep-last", "-1"), "must be 0 or more"),
        (("--keep-daily", "many"), "is not a count"),
        (("--keep-within", "1w"), "invalid duration"),
        (("--keep-within", "0d"), "is zero"),
        (("--keep-within-daily", "0d"), "is zero"),
        (("--keep-within-weekly", "2w"), "invalid duration"),
        (("--keep-last", "1", "--group-by", "user"), "cannot group by user"),
        (("--keep-tag", ""), "non-empty tags"),
    ],
)
def test_refusals(tmp_path, run_cli, args, message):
    url = str(tmp_path / "repo")
    repo = make_repo(url)
    ids = add_history(repo, SPREAD)
    before = objects(repo)
    args = tuple(ids["p1"] if a == "ID" else a for a in args)
    res = run_cli("forget", "--repo", url, *args)
    assert res.code == 2, res.err
    assert message in res.err
    assert objects(repo) == before


def test_unlimited_keeps_every_period(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    ids = add_history(make_repo(url), SPREAD)
    doc = forget_json(run_cli, url, "--keep-daily", "unlimited", "--group-by", "")
    assert doc["removed"] == 0 and remaining(run_cli, url, ids) == set(ids)
    assert doc["policy"] == "keep all daily"


# ------------------------------------------------------------------ --prune
def write(root: Path, name: str) -> None:
    for old in root.iterdir():
        old.unlink()
    (root / name).write_bytes(os.urandom(3 * MIB // 2))


def test_forget_then_prune_frees_the_data_of_removed_snapshots(tmp_path, url, run_cli):
    make_repo(url)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("one", "two", "three"):
        write(src, name)
        ok(run_cli("backup", "--repo", url, src))
    repo = Repository.open(
        wrap_backend(backend_for(url, StoreOptions()), StoreOptions())[0], PASSWORD.encode()
    )
    data_before = sum(size for _, size in repo.storage.list("data/"))

    dry = ok(run_cli("forget", "--repo", url, "--keep-last", "1", "--prune", "--dry-run"))
    assert "prune would run after the removal" in dry.out
    assert sum(size for _, size in repo.storage.list("data/")) == data_before

    doc = forget_json(run_cli, url, "--keep-last", "1", "--prune")
    assert doc["removed"] == 2
    assert doc["prune"]["snapshots"] == 1 and doc["prune"]["packs_deleted"] >= 2
    data_after = sum(size for _, size in repo.storage.list("data/"))
    assert data_after < data_before - 2 * MIB  # the two removed files' data is gone
    assert verify_repository(repo)["snapshots"] == 1
    out = tmp_path / "out"
    ok(run_cli("restore", "--repo", url, f"latest:{src}", "--target", out))
    assert diff(describe(src, atime=False), describe(out, atime=False)) == []

    again = ok(run_cli("forget", "--repo", url, "--keep-last", "1", "--prune"))
    assert "nothing was removed, so prune did not run" in again.out


def test_when_prune_cannot_run_the_removal_is_still_reported(tmp_path, run_cli):
    url = str(tmp_path / "repo")
    repo = make_repo(url)
    ids = add_history(repo, SPREAD)
    Locks(repo).write(new_lock("prune"))  # another prune is running
    res = run_cli("forget", "--repo", url, "--keep-last", "1", "--prune", "--json")
    assert res.code == 1 and "another prune lock" in res.err
    doc = res.json()
    assert doc["removed"] == 2 and "another prune lock" in doc["prune"]["error"]
    assert remaining(run_cli, url, ids) == {"p2", "p3", "p5"}
