"""A directory's tree taken from the files cache (ops/backup/reuse.py): taken when nothing in
the directory changed, and never when something did.

Each case backs up a tree (which records the trees), changes something, and backs it up again
with the files cache; the root tree must be the one a walk without any files cache builds (it
reads every file and builds every node), and the directories taken from the cache are counted.
Entries made just now are too recent for their directory to be recorded, so most cases let the
walk record them at once (``recent_from``); one case keeps the rule.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import time
from pathlib import Path

import msgpack
import pytest

from cairn.model.node import DIR, FILE, SYMLINK
from cairn.ops.backup.archiver import Archiver, BackupOptions
from cairn.ops.backup.parent import ParentFiles
from cairn.ops.backup.reuse import RACY_NS
from cairn.ops.excludes import TagRule
from cairn.ops.filter_patterns import PatternList
from cairn.ops.progress import NullProgress
from cairn.ops.treewalk import load_tree
from cairn.repo import layout
from cairn.repo.filescache import FilesCache
from tests.craft import create_repo, open_repo
from tests.treecmp import read_like_any_program
from tests.verify import restored_diff

NEVER_TOO_RECENT = (1 << 63) - 1


class Run:
    def __init__(self, archiver: Archiver, tree: bytes, calls: list[tuple[bytes, str]]) -> None:
        self.archiver = archiver
        self.tree = tree
        self.summary = archiver.summary
        self.reused = archiver.dirs_reused
        self.calls = calls


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.repo = create_repo(tmp_path / "repo")
        self.cache_path = tmp_path / "cache" / "files.sqlite"
        self.src = tmp_path / "src"
        self.src.mkdir()

    def backup(
        self,
        cache: bool = True,
        settled: bool = True,
        paths: list[Path] | None = None,
        parent: bytes | None = None,
        **options: object,
    ) -> Run:
        """One backup of ``src`` (or ``paths``); ``settled``: entries made just now may be
        recorded; ``cache``: False walks without any files cache."""
        repo = open_repo(self.repo)
        files = FilesCache(self.cache_path) if cache else None
        calls: list[tuple[bytes, str]] = []
        opts = BackupOptions(on_file=lambda p, s: calls.append((p, s)), **options)  # type: ignore[arg-type]
        with repo.writer() as writer:
            known = files if parent is None else ParentFiles(repo, parent, files)
            archiver = Archiver(writer, known, opts, NullProgress())
            if settled:
                archiver.recent_from = NEVER_TOO_RECENT
            tree = archiver.run([os.fsencode(p) for p in paths or [self.src]])
            writer.flush()
        if files is not None:
            files.commit()
            files.close()
        return Run(archiver, tree, calls)

    def record(self) -> Run:
        """Backs up twice: the first walk's readlink moves the symlinks' access times (no
        O_NOATIME for a symlink), so the second records trees that stay."""
        self.backup()
        return self.backup()

    def fresh(self, **options: object) -> bytes:
        """The root tree a walk without a files cache builds."""
        return self.backup(cache=False, **options).tree

    def same_as_fresh(self, run: Run, **options: object) -> None:
        """The backup's snapshot is what a walk without a files cache makes of the source now,
        but for the symlinks' access times (the walk's own readlink may have moved them)."""
        check_complete(self.repo, run.tree)
        fresh = self.fresh(**options)
        # from src down (the directories above it are shared with the rest of the system)
        assert listing(self.repo, self.src_tree(run.tree)) == listing(
            self.repo, self.src_tree(fresh)
        )

    def src_tree(self, root: bytes) -> bytes:
        repo = open_repo(self.repo)
        tree = root
        for name in self.src.parts[1:]:
            (node,) = [n for n in load_tree(repo, tree) if n.name == os.fsencode(name)]
            assert node.subtree is not None
            tree = node.subtree
        return tree


def check_complete(repo_path: Path, tree: bytes) -> None:
    """Every tree and content blob of the snapshot is in the repository."""
    repo = open_repo(repo_path)
    stack = [tree]
    while stack:
        for node in load_tree(repo, stack.pop()):
            if node.type == DIR:
                assert node.subtree is not None
                stack.append(node.subtree)
            elif node.type == FILE:
                assert all(repo.has_blob(b) for b in node.content)


def listing(repo_path: Path, tree: bytes) -> dict[bytes, dict[str, object]]:
    """path -> node fields (the subtree id left out, a symlink's access time too)."""
    repo = open_repo(repo_path)
    out: dict[bytes, dict[str, object]] = {}
    stack = [(b"", tree)]
    while stack:
        prefix, t = stack.pop()
        for node in load_tree(repo, t):
            m = node.to_map()
            m.pop("subtree", None)
            if node.type == SYMLINK:
                m.pop("atime", None)
            out[prefix + node.name] = m
            if node.type == DIR:
                assert node.subtree is not None
                stack.append((prefix + node.name + b"/", node.subtree))
    return out


def make_tree(src: Path) -> int:
    """Three levels, a symlink, a hardlink pair across directories; the number of directories
    the walk of ``src`` lists (src included)."""
    for d in ("a", "a/deep", "a/deep/er", "b", "c"):
        (src / d).mkdir()
    for i, d in enumerate(("", "a", "a/deep", "a/deep/er", "b", "c")):
        for j in range(3):
            (src / d / f"f{j}.txt").write_bytes(b"%d-%d content\n" % (i, j))
    os.symlink("f0.txt", src / "b" / "link")
    os.link(src / "c" / "f0.txt", src / "a" / "hard")
    return 6


@pytest.fixture
def s(tmp_path: Path) -> Setup:
    setup = Setup(tmp_path)
    setup.dirs = make_tree(setup.src)  # type: ignore[attr-defined]
    return setup


def dirs_above(src: Path) -> int:
    """The directories from / down to src's parent (built, never taken: given in part)."""
    return len(src.parts) - 1


# ------------------------------------------------------------------ taken when unchanged
def test_an_unchanged_tree_is_taken_whole_with_the_same_summary_and_reports(s: Setup) -> None:
    first = s.backup()
    assert first.reused == 0
    second = s.backup()
    # b (the first walk's readlink moved its symlink's access time) and src above it
    assert second.reused == s.dirs - 2  # type: ignore[attr-defined]
    again = s.backup()
    assert again.reused == s.dirs  # type: ignore[attr-defined]
    assert s.src_tree(again.tree) == s.src_tree(second.tree)
    s.same_as_fresh(again)
    # the summary and the files reported are those of a backup that builds every tree
    built = s.backup(ignore_ctime=True)  # no tree is taken with it
    assert built.reused == 0 and s.src_tree(built.tree) == s.src_tree(second.tree)
    for key in ("files_unchanged", "files_new", "files_changed", "bytes_total"):
        assert getattr(again.summary, key) == getattr(built.summary, key), key
    assert again.summary.files_unchanged == 18  # and one hardlink
    # src and below are unchanged trees; the directories above it (shared with the rest of
    # the system) may have changed in between
    assert again.summary.dirs_unchanged >= s.dirs  # type: ignore[attr-defined]
    dirs = again.summary.dirs_unchanged + again.summary.dirs_new
    assert dirs == s.dirs + dirs_above(s.src)  # type: ignore[attr-defined]
    assert again.calls == built.calls
    assert len(again.calls) == 18 and all(st == "unchanged" for _, st in again.calls)


def test_entries_changed_just_before_the_backup_are_not_recorded(s: Setup) -> None:
    s.backup(settled=False)  # everything was made just now
    again = s.backup(settled=False)
    assert again.reused == 0
    s.same_as_fresh(again)


# ------------------------------------------------------------------ never taken when changed
def test_new_content_of_the_same_size_and_mtime_is_seen(s: Setup) -> None:
    s.record()
    f = s.src / "a" / "deep" / "f1.txt"
    st = f.stat()
    f.write_bytes(f.read_bytes().upper())
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = s.backup()
    assert again.summary.files_changed == 1
    # the file's directory and those above it are built; b, c and a/deep/er are taken
    assert again.reused == s.dirs - 3  # type: ignore[attr-defined]
    s.same_as_fresh(again)


@pytest.mark.parametrize(
    "change",
    [
        "chmod",
        "chown",
        "xattr",
        "new file",
        "removed file",
        "rename",
        "symlink target",
        "new directory",
        "directory chmod",
        "atime",
        "hardlink count",
        "content through another link",
    ],
)
def test_a_change_is_never_missed(s: Setup, change: str) -> None:
    first = s.record()
    src = s.src
    if change == "chmod":
        os.chmod(src / "a" / "deep" / "er" / "f2.txt", 0o600)
    elif change == "chown":
        os.chown(src / "b" / "f1.txt", -1, os.getgroups()[-1] if os.getgroups() else 0)
        if (src / "b" / "f1.txt").stat().st_gid == os.getgid():
            os.chown(src / "b" / "f1.txt", -1, os.getgid())  # the same group: a ctime still
    elif change == "xattr":
        try:
            os.setxattr(src / "a" / "deep" / "er" / "f0.txt", b"user.note", b"v")
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                pytest.skip("no user xattrs here")
            raise
    elif change == "new file":
        (src / "a" / "deep" / "er" / "new").write_bytes(b"new")
    elif change == "removed file":
        (src / "a" / "deep" / "er" / "f1.txt").unlink()
    elif change == "rename":
        (src / "a" / "deep" / "er" / "f1.txt").rename(src / "a" / "deep" / "er" / "g1.txt")
    elif change == "symlink target":
        (src / "b" / "link").unlink()
        os.symlink("f1.txt", src / "b" / "link")  # a target of the same length
    elif change == "new directory":
        (src / "a" / "deep" / "er" / "sub").mkdir()
    elif change == "directory chmod":
        os.chmod(src / "a" / "deep" / "er", 0o700)
    elif change == "atime":
        read_like_any_program(src / "a" / "deep" / "er")
        st = (src / "a" / "deep" / "er" / "f0.txt").stat()
        os.utime(src / "a" / "deep" / "er" / "f0.txt", ns=(st.st_atime_ns - 10**9, st.st_mtime_ns))
    elif change == "hardlink count":
        os.link(src / "c" / "f0.txt", src / "c0-again")
    elif change == "content through another link":
        with open(src / "a" / "hard", "r+b") as f:
            f.write(b"X")
    again = s.backup()
    assert s.src_tree(again.tree) != s.src_tree(first.tree)
    s.same_as_fresh(again)
    assert again.reused < s.dirs  # type: ignore[attr-defined]
    # what did not change is still taken
    if change not in ("hardlink count", "content through another link", "symlink target"):
        assert again.reused >= 2  # b and c


def test_a_change_deep_down_builds_only_the_directories_above_it(s: Setup) -> None:
    s.record()
    (s.src / "a" / "deep" / "er" / "f0.txt").write_bytes(b"longer new content\n")
    again = s.backup()
    assert again.reused == s.dirs - 4  # type: ignore[attr-defined]  # er, deep, a, src
    s.same_as_fresh(again)
    third = s.backup()
    assert third.reused == s.dirs  # type: ignore[attr-defined]
    assert s.src_tree(third.tree) == s.src_tree(again.tree)


# ------------------------------------------------------------------ options
def test_other_excludes_make_other_listings(s: Setup) -> None:
    s.record()
    narrower = {"excludes": PatternList(["*/deep/er/f1.txt"])}
    again = s.backup(**narrower)
    s.same_as_fresh(again, **narrower)
    assert again.reused == s.dirs - 4  # type: ignore[attr-defined]
    back = s.backup()
    s.same_as_fresh(back)
    assert back.reused == s.dirs - 4  # type: ignore[attr-defined]


def test_exclude_larger_than_and_tag_files_between_runs(s: Setup) -> None:
    s.record()
    (s.src / "b" / "big").write_bytes(b"x" * 5000)
    s.backup()
    small = {"exclude_larger_than": 1000}
    again = s.backup(**small)
    s.same_as_fresh(again, **small)
    assert again.reused == s.dirs - 2  # type: ignore[attr-defined]  # b and src
    (s.src / "c" / ".nobackup").write_bytes(b"")
    tagged = {"tag_rules": [TagRule(b".nobackup")]}
    again = s.backup(**tagged)
    s.same_as_fresh(again, **tagged)
    # c and src, and b: its big file is back without the option
    assert again.reused == s.dirs - 3  # type: ignore[attr-defined]


def test_force_and_the_ignore_options_take_no_tree(s: Setup) -> None:
    s.record()
    for options in ({"force": True}, {"ignore_ctime": True}, {"ignore_inode": True}):
        run = s.backup(**options)
        assert run.reused == 0, options
        s.same_as_fresh(run)
    assert s.backup().reused == s.dirs  # type: ignore[attr-defined]  # still recorded


def test_a_parent_snapshot_takes_no_tree_but_records_them(s: Setup) -> None:
    s.backup(cache=False)
    first = s.backup(cache=False)
    with_parent = s.backup(parent=first.tree)
    assert with_parent.reused == 0
    assert with_parent.summary.files_unchanged == 18
    s.same_as_fresh(with_parent)
    assert s.backup().reused == s.dirs  # type: ignore[attr-defined]


def test_some_paths_given_record_no_tree_of_their_directory(s: Setup) -> None:
    s.record()
    part = s.backup(paths=[s.src / "a", s.src / "f0.txt"])
    assert part.reused == 3  # a, deep, er: walked; src: given in part; b, c: not walked
    assert s.backup().reused == s.dirs  # type: ignore[attr-defined]


# ------------------------------------------------------------------ the repository lost it
def test_a_tree_gone_from_the_repository_is_built_again(s: Setup, tmp_path: Path) -> None:
    """The repository is put back to an older copy of itself (as a prune that removed the
    trees would leave it): the records are there, the trees are not."""
    empty = tmp_path / "repo-at-init"
    shutil.copytree(s.repo, empty)
    s.record()
    shutil.rmtree(s.repo)
    shutil.copytree(empty, s.repo)
    again = s.backup()
    assert again.reused == 0
    check_complete(s.repo, again.tree)
    s.same_as_fresh(again)


def test_a_tree_whose_file_blob_is_gone_is_built_again(s: Setup, run_cli) -> None:  # type: ignore[no-untyped-def]
    """The packs of file data are lost and the index rebuilt from what is left: the recorded
    trees are in the index (as a prune may keep a tree no snapshot uses), their files' blobs
    are not. Every file is read again and every tree built and stored again."""
    first = s.record()
    repo = open_repo(s.repo)
    for info in repo.index.packs:
        if info.blob_type == 0:
            (s.repo / layout.pack_name(info.id.hex())).unlink()
    res = run_cli("repair", "index", "--repo", s.repo)
    assert res.code == 0, res.err
    assert open_repo(s.repo).has_blob(first.tree)
    again = s.backup()
    assert again.reused == 0
    assert again.summary.files_unchanged == 0
    assert s.src_tree(again.tree) == s.src_tree(first.tree)
    check_complete(s.repo, again.tree)


# ------------------------------------------------------------------ the cache's schema
def test_a_version_3_cache_keeps_its_files_and_gains_tree_records(s: Setup) -> None:
    s.record()
    db = sqlite3.connect(s.cache_path)
    rows = db.execute("SELECT dir, entries, gen FROM dirs").fetchall()
    db.executescript(
        "DROP TABLE dirs; CREATE TABLE dirs (dir BLOB NOT NULL PRIMARY KEY, "
        "entries BLOB NOT NULL, gen INTEGER NOT NULL) WITHOUT ROWID;"
        "UPDATE meta SET v=3 WHERE k='schema';"
    )
    db.executemany("INSERT INTO dirs VALUES (?,?,?)", rows)
    db.commit()
    db.close()
    again = s.backup()
    assert again.reused == 0  # no records yet
    assert again.summary.files_unchanged == 18  # the files' entries were kept
    third = s.backup()
    assert third.reused == s.dirs  # type: ignore[attr-defined]
    db = sqlite3.connect(s.cache_path)
    assert db.execute("SELECT v FROM meta WHERE k='schema'").fetchone() == (4,)
    entries = db.execute("SELECT entries FROM dirs WHERE dir=?", (os.fsencode(s.src),)).fetchone()
    assert set(msgpack.unpackb(entries[0], strict_map_key=False)) == {
        b"f0.txt",
        b"f1.txt",
        b"f2.txt",
    }
    db.close()


def test_a_damaged_tree_record_is_ignored(s: Setup) -> None:
    s.record()
    db = sqlite3.connect(s.cache_path)
    db.execute("UPDATE dirs SET tree=x'0102'")
    db.commit()
    db.close()
    again = s.backup()
    assert again.reused == 0
    s.same_as_fresh(again)
    assert s.backup().reused == s.dirs  # type: ignore[attr-defined]


# ------------------------------------------------------------------ through the command line
def test_through_the_command_line(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """The backups a user runs: the files listed with -vv and the summary are the same
    whether the trees are taken or built, the cache records a tree for every directory
    walked, and after changes only the ctime tells, a restore is the source."""
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo).code == 0
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    time.sleep(RACY_NS / 1e9 + 0.1)  # older than the rule on recent changes

    def backup(*extra: str) -> tuple[list[str], dict[str, object]]:
        res = run_cli("backup", "--repo", repo, "-vv", *extra, src)
        assert res.code == 0, res.err
        files = [x for x in res.out.splitlines() if x.startswith(("new ", "modified ", "unch"))]
        res = run_cli("snapshots", "--repo", repo, "--json", "--latest", "1")
        assert res.code == 0, res.err
        return files, res.json()[-1]["summary"]

    backup()
    backup()  # the symlink's access time settles
    taken, taken_summary = backup()
    built, built_summary = backup("--ignore-ctime")
    assert taken == built and len(taken) == 18
    for key in ("files_unchanged", "files_new", "files_changed", "bytes_total"):
        assert taken_summary[key] == built_summary[key], key
    cache = next((tmp_path / "cache").glob("*/files.sqlite"))
    db = sqlite3.connect(cache)
    walked = [os.fsencode(p) for p in (src, src / "a", src / "a/deep", src / "a/deep/er")]
    walked += [os.fsencode(src / "b"), os.fsencode(src / "c")]
    recorded = dict(db.execute("SELECT dir, tree FROM dirs").fetchall())
    db.close()
    assert all(recorded.get(d) is not None and len(recorded[d]) == 64 for d in walked)

    # changes only the ctime tells: a file's content (same size, mtime put back), a mode
    f = src / "a" / "deep" / "er" / "f1.txt"
    st = f.stat()
    f.write_bytes(f.read_bytes().upper())
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(src / "c" / "f2.txt", 0o640)
    files, summary = backup()
    assert f"modified  {f}" in files
    assert summary["files_changed"] == 2  # a new ctime: the mode's file is read again too
    out = tmp_path / "out"
    res = run_cli("restore", "--repo", repo, f"latest:{src}", "--target", out)
    assert res.code == 0, res.err
    assert restored_diff(src, out, repo) == []
