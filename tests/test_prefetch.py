"""Reading a tree's inodes ahead of a re-backup's walk (ops/backup/prefetch.py): the process
walks what the backup walks, in its order, moves no access time, and runs for a re-backup
only, ended when the backup ends."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cairn.ops.backup import prefetch
from cairn.ops.backup.archiver import BackupOptions
from cairn.ops.backup.snapshot_writer import BackupRequest, run_backup
from cairn.ops.filter_patterns import PatternList
from cairn.ops.progress import NullProgress
from cairn.repo.filescache import FilesCache
from tests.craft import create_repo, open_repo

NONE = PatternList([])


def _tree(root: Path) -> None:
    for d in ("b", "a/y", "a/x", "c", "skip/deep"):
        (root / d).mkdir(parents=True)
    for f in ("a/x/1", "a/2", "b/3", "skip/deep/4", "top"):
        (root / f).write_bytes(b"x")
    (root / "link").symlink_to(root / "a")  # not followed


def test_it_walks_the_tree_in_the_backups_order_without_what_is_excluded(tmp_path: Path) -> None:
    _tree(tmp_path)
    root = os.fsencode(tmp_path)
    seen = list(prefetch.walk([root], NONE, NONE, False))
    names = [p[len(root) :] for p in seen]
    # depth first, entries by name, as Archiver._walk_tree
    assert names == [b"", b"/a", b"/a/x", b"/a/y", b"/b", b"/c", b"/skip", b"/skip/deep"]
    excluded = list(
        prefetch.walk([root], PatternList(["skip"]), PatternList(["B"], ignore_case=True), False)
    )
    assert [p[len(root) :] for p in excluded] == [b"", b"/a", b"/a/x", b"/a/y", b"/c"]


def test_it_moves_no_access_time(tmp_path: Path) -> None:
    """A directory's access time is in its listing's digest (ops/backup/reuse.py): listing it
    ahead of the backup must not change it (an access time older than the modification time
    is one the file system would update on a plain listing)."""
    _tree(tmp_path)
    dirs = [tmp_path / d for d in ("a", "a/x", "b", "skip/deep")]
    for d in dirs:
        os.utime(d, ns=(1_000_000_000, os.stat(d).st_mtime_ns))
    before = [os.stat(d).st_atime_ns for d in dirs]
    assert len(list(prefetch.walk([os.fsencode(tmp_path)], NONE, NONE, False))) == 8
    assert [os.stat(d).st_atime_ns for d in dirs] == before


def test_the_process_walks_and_ends(tmp_path: Path) -> None:
    _tree(tmp_path)
    ahead = prefetch.start([os.fsencode(tmp_path)], NONE, NONE, False)
    assert ahead is not None
    assert ahead.proc.wait(timeout=60) == 0  # it ends by itself once the tree is walked
    ahead.stop()


def _backups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    """Two backups of one tree with the files cache; the paths each started a process for."""
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    create_repo(tmp_path / "repo")
    started: list[list[bytes]] = []
    processes: list[subprocess.Popen[bytes]] = []
    real = prefetch.start

    def start(paths: list[bytes], *args: object) -> prefetch.Prefetch | None:
        ahead = real(paths, *args)  # type: ignore[arg-type]
        assert ahead is not None
        excludes, iexcludes, one_file_system = args
        # what the walk leaves out, it leaves out too
        assert excludes.patterns == ["skip"]  # type: ignore[attr-defined]
        assert iexcludes.patterns == ["B"] and one_file_system  # type: ignore[attr-defined]
        started.append(paths)
        processes.append(ahead.proc)
        return ahead

    monkeypatch.setattr(prefetch, "start", start)
    runs: list[list[bytes]] = []
    options = BackupOptions(
        excludes=PatternList(["skip"]),
        iexcludes=PatternList(["B"], ignore_case=True),
        one_file_system=True,
    )
    for _ in range(2):
        before = len(started)
        cache = FilesCache(tmp_path / "cache" / "files.sqlite")
        run_backup(
            open_repo(tmp_path / "repo"),
            BackupRequest([str(src)], options=options),
            NullProgress(),
            cache,
            None,
        )
        cache.close()
        runs.append([p for paths in started[before:] for p in paths])
        assert all(p.poll() is not None for p in processes)  # ended with the backup
    return runs


def test_a_re_backup_starts_it_and_a_first_backup_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, again = _backups(tmp_path, monkeypatch)
    assert first == []
    assert again == [os.fsencode(tmp_path / "src")]


def test_a_directory_in_memory_has_only_its_subdirectories_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a warm cache the process would only spend CPU: once a directory's first, middle and
    last entries answer at once, its other files are not looked at; when they take long (from
    the disk), every entry is."""
    for i in range(20):
        (tmp_path / f"f{i:02}").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "g").write_bytes(b"x")
    asked: list[bytes] = []
    real = os.stat

    def counted(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counted)
    root = os.fsencode(tmp_path)
    assert list(prefetch.walk([root], NONE, NONE, False)) == [root, root + b"/sub"]
    # the probes (f00, f10, sub), then the subdirectory, then the small one's entry
    assert asked == [b"f00", b"f10", b"sub", b"sub", b"g"]
    asked.clear()
    monkeypatch.setattr(prefetch, "SLOW_NS", -1)  # every lstat counts as read from the disk
    assert list(prefetch.walk([root], NONE, NONE, False)) == [root, root + b"/sub"]
    assert asked == [b"f00", *(f"f{i:02}".encode() for i in range(20)), b"sub", b"g"]


def test_it_stops_once_the_backup_is_gone(tmp_path: Path) -> None:
    """Started by a process that is no longer its parent (the backup ended without stopping
    it), the walk goes no further than the directory it is in."""
    _tree(tmp_path)
    root = os.fsencode(tmp_path)
    assert list(prefetch.walk([root], NONE, NONE, False, parent=os.getppid())) == list(
        prefetch.walk([root], NONE, NONE, False)
    )
    assert list(prefetch.walk([root], NONE, NONE, False, parent=-1)) == [root]
