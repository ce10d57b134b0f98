"""An exclude file brought over from restic leaves out exactly what restic's own backup of the
same tree leaves out: both tools back it up, and their snapshots list the same paths."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

RESTIC = "/usr/bin/restic"

pytestmark = pytest.mark.skipif(not os.access(RESTIC, os.X_OK), reason="restic not installed")

FILES = [
    "foo/bar/test.c",
    "foo/bar/test.go",
    "foo/bar/main.c",
    "foo/baz/test.h",
    "foo/baz/deep/test.c",
    "data/keep/a.txt",
    "data/keep/sub/b.txt",
    "data/drop/c.txt",
    "data/other.txt",
    "gone/inner/kept.c",
    "gone/x.txt",
    "src/lib.o",
    "src/lib.c",
    "src/keep.o",
    "star/foo*",
    "star/foox",
    "clean/a/b.log",
    "clean/a/c.txt",
    "Mixed/Photo.JPG",
    "Mixed/photo.txt",
]


def tree(root: Path) -> None:
    for rel in FILES:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)


def restic_paths(tmp_path: Path, *args: str | Path) -> set[str]:
    repo = tmp_path / "restic-repo"
    env = {**os.environ, "RESTIC_PASSWORD": "pw", "RESTIC_CACHE_DIR": str(tmp_path / "rc")}

    def run(*a: str | Path) -> str:
        proc = subprocess.run(
            [RESTIC, "-r", repo, "-q", *a], env=env, capture_output=True, check=False
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode()

    if not repo.exists():
        run("init")
    run("backup", *args)
    lines = run("ls", "--json", "latest").splitlines()
    nodes = [json.loads(x) for x in lines]
    return {n["path"] for n in nodes if n.get("struct_type") == "node"}


def cairn_paths(run_cli: Callable[..., object], tmp_path: Path, *args: str | Path) -> set[str]:
    repo = tmp_path / "cairn-repo"
    if not repo.exists():
        res = run_cli("init", "--repo", repo)
        assert res.code == 0, res.err  # type: ignore[attr-defined]
    res = run_cli("backup", "--repo", repo, "--json", *args)
    assert res.code == 0, res.err  # type: ignore[attr-defined]
    res = run_cli("ls", "--repo", repo, "--json", "latest")
    assert res.code == 0, res.err  # type: ignore[attr-defined]
    nodes = [json.loads(x) for x in res.out.splitlines()]  # type: ignore[attr-defined]
    return {n["path"] for n in nodes if "path" in n}


EXCLUDES = """\
# restic's own example: exclude, then bring back
/ROOT/foo/*/test.*
!*.c
# the last matching line decides
/ROOT/data/*
!/ROOT/data/keep
/ROOT/data/keep/sub
# an excluded directory is not entered: the ! below brings nothing back
/ROOT/gone
!/ROOT/gone/inner/kept.c
*.o
!keep.o
# an escape: only the file named foo*
/ROOT/star/foo\\*
# cleaned as restic cleans it
/ROOT/clean//a/./x/../b.log
"""


def test_an_exclude_file_keeps_what_restics_backup_keeps(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    tree(root)
    excludes = tmp_path / "excludes"
    excludes.write_text(EXCLUDES.replace("/ROOT", str(root)))
    theirs = restic_paths(tmp_path, "--exclude-file", excludes, "--iexclude", "*.jpg", root)
    ours = cairn_paths(run_cli, tmp_path, "--exclude-file", excludes, "--iexclude", "*.jpg", root)
    assert ours == theirs
    kept = {p[len(str(root)) + 1 :] for p in ours if p.startswith(f"{root}/")}
    # the cases the file is about, so that agreeing on nothing cannot pass
    assert {"foo/bar/test.c", "foo/baz/deep/test.c", "data/keep/a.txt", "src/keep.o"} <= kept
    assert "star/foox" in kept and "clean/a/c.txt" in kept and "Mixed/photo.txt" in kept
    left_out = {"foo/bar/test.go", "foo/baz/test.h", "data/drop", "data/other.txt", "gone"}
    left_out |= {"gone/inner/kept.c", "src/lib.o", "star/foo*", "clean/a/b.log"}
    left_out |= {"data/keep/sub", "Mixed/Photo.JPG"}
    assert not left_out & kept


def test_a_pattern_naming_a_directory_above_the_backup_root_excludes_all_inside(
    tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    tree(root)
    target = root / "foo" / "baz"
    theirs = restic_paths(tmp_path, "--exclude", "foo", target)
    ours = cairn_paths(run_cli, tmp_path, "--exclude", "foo", target)
    # nothing inside is backed up; the path given itself is kept (restic leaves it out too)
    assert ours == theirs | {str(target)}
    assert str(target) not in theirs
