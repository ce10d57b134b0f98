"""The backup options restic users reach for, through the command line: lists of files to back
up, exclusion by tag file, size and case, change detection (--parent, --force, --ignore-inode,
--ignore-ctime), the snapshot's time, and the files -v lists."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from cairn.ops.snapshots import load_snapshots
from cairn.repo.repository import Repository
from cairn.storage.local import LocalStorage
from tests.conftest import FAST_KDF, PASSWORD

SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
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
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha\n")
    (root / "docs" / "b.txt").write_text("beta\n")
    (root / "music").mkdir()
    (root / "music" / "song.mp3").write_bytes(b"x" * 3000)
    return root


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def backup(run_cli, repo: Path, *args: str | Path) -> dict:  # type: ignore[no-untyped-def]
    return ok(run_cli("backup", "--repo", repo, "--json", *args)).json()  # type: ignore[no-any-return]


def listed(run_cli, repo: Path, snap: str, root: Path) -> set[str]:  # type: ignore[no-untyped-def]
    """Paths in the snapshot below ``root``, relative to it."""
    res = ok(run_cli("ls", "--repo", repo, "--json", snap, root))
    prefix = f"{root}/"
    return {json.loads(x)["path"][len(prefix) :] for x in res.out.splitlines()}


def snapshot_count(repo: Path) -> int:
    d = repo / "snapshots"
    return len(list(d.iterdir())) if d.exists() else 0


def recorded_excludes(repo: Path, snap_id: str) -> list[str]:
    r = Repository.open(LocalStorage(repo), PASSWORD.encode())
    (snap,) = [s for s in load_snapshots(r) if s.id == snap_id]
    return snap.excludes


def refused(res, repo: Path, before: int, text: str) -> None:  # type: ignore[no-untyped-def]
    """Bad input: one line on stderr saying ``text``, a non-zero exit, nothing written."""
    assert res.code != 0
    assert text in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert snapshot_count(repo) == before
    assert not (repo / "locks").exists() or not list((repo / "locks").iterdir())


# ------------------------------------------------------------------ --files-from and kin
def test_files_from_skips_comments_and_blank_lines_and_joins_the_command_line(
    repo, src, tmp_path, run_cli
):
    (src / " spaced").write_text("s")
    listing = tmp_path / "list"
    listing.write_text(f"# what to keep\n\n  {src / 'docs' / 'a.txt'}  \n{src / 'music'}\n")
    other = tmp_path / "other"
    other.write_text(f"{src / 'docs' / 'b.txt'}\n")
    snap = backup(
        run_cli,
        repo,
        "--files-from",
        listing,
        "--files-from",
        other,
        src / " spaced",
    )
    assert sorted(snap["paths"]) == sorted(
        str(p)
        for p in (src / "docs" / "a.txt", src / "docs" / "b.txt", src / "music", src / " spaced")
    )
    assert listed(run_cli, repo, snap["id"], src) == {
        " spaced",
        "docs",
        "docs/a.txt",
        "docs/b.txt",
        "music",
        "music/song.mp3",
    }


def test_files_from_verbatim_takes_every_line_as_it_is(repo, src, tmp_path, run_cli, monkeypatch):
    (src / "#hash").write_text("h")
    (src / " lead").write_text("l")
    listing = tmp_path / "list"
    listing.write_bytes(b"#hash\n lead\n")  # relative to the working directory
    monkeypatch.chdir(src)
    snap = backup(run_cli, repo, "--files-from-verbatim", listing)
    assert listed(run_cli, repo, snap["id"], src) == {"#hash", " lead"}
    # read as --files-from, the lines are a comment and a path trimmed of its space
    res = run_cli("backup", "--repo", repo, "--files-from", listing)
    refused(res, repo, 1, f"{src}/lead: no such file")


def test_files_from_raw_takes_nul_separated_names_of_any_bytes(repo, src, tmp_path, run_cli):
    odd = os.fsencode(src) + b"/new\nline \xff"
    Path(os.fsdecode(odd)).write_text("o")
    listing = tmp_path / "list"
    listing.write_bytes(odd + b"\0" + os.fsencode(src / "docs") + b"\0")
    snap = backup(run_cli, repo, "--files-from-raw", listing)
    assert listed(run_cli, repo, snap["id"], src) == {
        os.fsdecode(b"new\nline \xff"),
        "docs",
        "docs/a.txt",
        "docs/b.txt",
    }


def test_files_from_standard_input(repo, src, cairn_proc):
    res = cairn_proc(
        "backup", "--repo", repo, "--json", "--files-from", "-", input=f"{src}/music\n".encode()
    )
    assert res.code == 0, res.err
    assert json.loads(res.out)["paths"] == [f"{src}/music"]


def test_a_listed_path_that_does_not_exist_backs_up_nothing(repo, src, tmp_path, run_cli):
    listing = tmp_path / "list"
    listing.write_text(f"{src}/docs\n{src}/gone\n")
    res = run_cli("backup", "--repo", repo, "--files-from", listing)
    refused(res, repo, 0, f"{src}/gone: no such file or directory")
    res = run_cli("backup", "--repo", repo, "--files-from", tmp_path / "no-list")
    refused(res, repo, 0, "cannot read list of files")


# ------------------------------------------------------------------ excludes
def test_exclude_caches_keeps_the_tag_of_a_valid_cache_directory_only(repo, src, run_cli):
    cache = src / "cache"
    cache.mkdir()
    (cache / "CACHEDIR.TAG").write_bytes(SIGNATURE + b"\n# a cache\n")
    (cache / "blob").write_text("cached")
    (cache / "sub").mkdir()
    fake = src / "fake"
    fake.mkdir()
    (fake / "CACHEDIR.TAG").write_bytes(b"Signature: not the one")
    (fake / "data").write_text("kept")
    snap = backup(run_cli, repo, "--exclude-caches", src)
    paths = listed(run_cli, repo, snap["id"], src)
    assert {"cache", "cache/CACHEDIR.TAG", "fake/CACHEDIR.TAG", "fake/data"} <= paths
    assert "cache/blob" not in paths and "cache/sub" not in paths
    assert recorded_excludes(repo, snap["id"]) == [
        f"--exclude-if-present=CACHEDIR.TAG:{SIGNATURE.decode()}"
    ]
    # without the option the cache is backed up
    snap = backup(run_cli, repo, src)
    assert "cache/blob" in listed(run_cli, repo, snap["id"], src)


def test_exclude_if_present_by_name_and_by_header(repo, src, run_cli):
    (src / "docs" / ".nobackup").write_text("")
    (src / "music" / ".tag").write_text("other content")
    snap = backup(
        run_cli,
        repo,
        "--exclude-if-present",
        ".nobackup",
        "--exclude-if-present",
        ".tag:SKIP ME",
        src,
    )
    assert listed(run_cli, repo, snap["id"], src) == {
        "docs",
        "docs/.nobackup",
        "music",
        "music/.tag",
        "music/song.mp3",
    }
    (src / "music" / ".tag").write_text("SKIP ME, please")
    snap = backup(run_cli, repo, "--exclude-if-present", ".tag:SKIP ME", src)
    assert "music/song.mp3" not in listed(run_cli, repo, snap["id"], src)
    assert recorded_excludes(repo, snap["id"]) == ["--exclude-if-present=.tag:SKIP ME"]


def test_exclude_if_present_needs_a_name(repo, src, run_cli):
    res = run_cli("backup", "--repo", repo, "--exclude-if-present", ":HEADER", src)
    refused(res, repo, 0, "does not start with a file name")


def test_exclude_larger_than(repo, src, run_cli):
    (src / "docs" / "exactly").write_bytes(b"y" * 2048)
    snap = backup(run_cli, repo, "--exclude-larger-than", "2K", src)
    paths = listed(run_cli, repo, snap["id"], src)
    assert "docs/exactly" in paths and "docs/a.txt" in paths
    assert "music/song.mp3" not in paths and "music" in paths
    assert recorded_excludes(repo, snap["id"]) == ["--exclude-larger-than=2048"]
    res = run_cli("backup", "--repo", repo, "--exclude-larger-than", "lots", src)
    refused(res, repo, 1, "invalid size 'lots'")


def test_iexclude_and_iexclude_file_ignore_case(repo, src, tmp_path, run_cli):
    (src / "music" / "LOUD.MP3").write_text("loud")
    (src / "docs" / "Notes.TXT").write_text("n")
    patterns = tmp_path / "patterns"
    patterns.write_text("# case does not matter\nnotes.txt\n")
    snap = backup(
        run_cli,
        repo,
        "--iexclude",
        "*.mp3",
        "--iexclude-file",
        patterns,
        "--exclude",
        "B.TXT",
        src,
    )
    assert listed(run_cli, repo, snap["id"], src) == {"docs", "docs/a.txt", "docs/b.txt", "music"}
    assert recorded_excludes(repo, snap["id"]) == [
        "B.TXT",
        "--iexclude=*.mp3",
        "--iexclude=notes.txt",
    ]


def test_excludes_do_not_apply_to_streams(repo, run_cli):
    res = run_cli(
        "backup", "--repo", repo, "--exclude-caches", "--stdin-from-command", "--", "true"
    )
    refused(res, repo, 0, "do not apply to streams")


# ------------------------------------------------------------------ change detection
def summary(snap: dict) -> tuple[int, int, int]:
    s = snap["summary"]
    return s["files_new"], s["files_changed"], s["files_unchanged"]


def test_force_reads_every_file_again(repo, src, run_cli):
    first = backup(run_cli, repo, src)
    assert summary(first) == (3, 0, 0)
    again = backup(run_cli, repo, src)
    assert summary(again) == (0, 0, 3) and again["summary"]["bytes_read"] == 0
    forced = backup(run_cli, repo, "--force", src)
    assert summary(forced) == (0, 0, 3)
    assert forced["summary"]["bytes_read"] == first["summary"]["bytes_read"] > 0
    assert forced["parent"] is None and again["parent"] == first["id"]


def test_parent_tells_unchanged_files_without_the_files_cache(repo, src, run_cli):
    first = backup(run_cli, repo, src)
    (src / "docs" / "a.txt").write_text("alpha, longer\n")
    other = backup(run_cli, repo, "--no-cache", src / "docs")  # another parent candidate
    # without a files cache every file is read; with --parent, the parent's trees say which
    # files are unchanged
    alone = backup(run_cli, repo, "--no-cache", "--dry-run", src)
    assert alone["summary"]["bytes_read"] == alone["summary"]["bytes_total"]
    snap = backup(run_cli, repo, "--no-cache", "--parent", first["id"][:10], src)
    assert snap["parent"] == first["id"]
    assert summary(snap) == (0, 1, 2)
    assert snap["summary"]["bytes_read"] == len("alpha, longer\n")
    snap = backup(run_cli, repo, "--no-cache", "--parent", other["id"], src)
    assert snap["parent"] == other["id"]
    assert summary(snap) == (1, 0, 2)  # music/ is not in that snapshot: its file is new


def test_an_unknown_parent_is_refused(repo, src, run_cli):
    backup(run_cli, repo, src)
    res = run_cli("backup", "--repo", repo, "--parent", "abcdef12", src)
    refused(res, repo, 1, "abcdef12")
    res = run_cli("backup", "--repo", repo, "--parent", "abcdef12", "--force", src)
    refused(res, repo, 1, "--force reads every file: it takes no --parent")
    res = run_cli("backup", "--repo", repo, "--parent", "latest", src)
    refused(res, repo, 1, "--parent takes a snapshot id")
    res = run_cli("backup", "--repo", repo, "--parent", "not-an-id", src)
    refused(res, repo, 1, "'not-an-id' is not a snapshot id")


def rewrite_keeping_mtime(path: Path, content: str, new_inode: bool) -> None:
    """New content of the same size with the old mtime: only the ctime (and with
    ``new_inode``, the inode) tells the change."""
    st = path.stat()
    if new_inode:
        tmp = path.with_name(path.name + ".new")
        tmp.write_text(content)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        tmp.rename(path)
        assert path.stat().st_ino != st.st_ino
    else:
        path.write_text(content)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_ignore_ctime_and_ignore_inode(repo, src, run_cli):
    a = src / "docs" / "a.txt"
    backup(run_cli, repo, src)
    rewrite_keeping_mtime(a, "ALPHA\n", new_inode=False)
    assert summary(backup(run_cli, repo, "--ignore-ctime", src)) == (0, 0, 3)
    assert summary(backup(run_cli, repo, src)) == (0, 1, 2)  # the ctime tells it
    rewrite_keeping_mtime(a, "alpha\n", new_inode=True)
    assert summary(backup(run_cli, repo, "--ignore-ctime", src)) == (0, 1, 2)  # the inode tells
    rewrite_keeping_mtime(a, "ALPHA\n", new_inode=True)
    assert summary(backup(run_cli, repo, "--ignore-inode", src)) == (0, 0, 3)


# ------------------------------------------------------------------ --time
def test_time_sets_the_snapshots_time(repo, src, run_cli):
    snap = backup(run_cli, repo, "--time", "2021-03-04 05:06:07", src)
    when = datetime.fromisoformat(snap["time"])
    assert when == datetime(2021, 3, 4, 5, 6, 7).astimezone()
    (listed_snap,) = ok(run_cli("snapshots", "--repo", repo, "--json")).json()
    assert datetime.fromisoformat(listed_snap["time"]) == when
    res = run_cli("backup", "--repo", repo, "--time", "yesterday", src)
    refused(res, repo, 1, "--time 'yesterday'")


# ------------------------------------------------------------------ -v
def test_verbose_lists_new_and_modified_files_and_vv_unchanged_ones(repo, src, run_cli):
    odd = src / "docs" / "line\nbreak"
    odd.write_text("odd")
    res = ok(run_cli("backup", "--repo", repo, "-v", src))
    lines = res.out.splitlines()
    assert f"new       {src}/docs/a.txt" in lines
    assert f"new       {src}/docs/line\\nbreak" in lines  # escaped as other commands print it
    (src / "docs" / "b.txt").write_text("beta, changed\n")
    os.utime(src / "music" / "song.mp3", (T2022, T2022))
    res = ok(run_cli("backup", "--repo", repo, "-v", src))
    listed_files = [x for x in res.out.splitlines() if x.startswith(("new ", "modified "))]
    assert sorted(listed_files) == [
        f"modified  {src}/docs/b.txt",
        f"modified  {src}/music/song.mp3",
    ]
    assert not any(x.startswith("unchanged") for x in res.out.splitlines())
    res = ok(run_cli("backup", "--repo", repo, "-vv", src))
    assert f"unchanged {src}/docs/a.txt" in res.out.splitlines()
    res = ok(run_cli("backup", "--repo", repo, src))
    assert not any(x.startswith(("new ", "modified ", "unchanged ")) for x in res.out.splitlines())


def test_parent_with_ignore_inode_finds_a_copied_tree_unchanged(repo, src, tmp_path, run_cli):
    """A copy has new inodes and ctimes: --ignore-inode still finds its files unchanged by
    --parent (a tree restored elsewhere, or a network mount remounted)."""
    first = backup(run_cli, repo, src)
    moved = tmp_path / "moved"
    shutil.copytree(src, moved, copy_function=shutil.copy2)
    shutil.rmtree(src)
    moved.rename(src)
    snap = backup(run_cli, repo, "--no-cache", "--parent", first["id"], "--ignore-inode", src)
    assert summary(snap) == (0, 0, 3)
    snap = backup(run_cli, repo, "--no-cache", "--parent", first["id"], src)
    assert summary(snap) == (0, 3, 0)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("../secrets", "can never match"),
        ("!../secrets", "can never match"),
        ("cache/[", "invalid pattern"),
        ("name\\", "invalid pattern"),
    ],
)
def test_an_exclude_that_can_never_match_is_refused(repo, src, run_cli, pattern, message):
    res = run_cli("backup", "--repo", repo, "--exclude", "*.o", "--exclude", pattern, src)
    refused(res, repo, 0, message)
    res = run_cli("rewrite", "--repo", repo, "--exclude", pattern, "--forget")
    refused(res, repo, 0, message)
