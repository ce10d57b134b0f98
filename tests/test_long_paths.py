"""Paths longer than PATH_MAX (4,096 bytes) are backed up and restored like any other: every
entry is reached relative to its directory's open descriptor."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

NAME = b"d" * 200
DEPTH = 24  # 24 * 201 bytes: about 4,800 bytes of path below the source


def _make_deep(top: Path) -> bytes:
    """A chain of directories deeper than PATH_MAX, with a file, a symlink and an xattr at the
    bottom and a file half-way; returns the bottom's path (too long to open by name)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for level in range(DEPTH):
        os.mkdir(NAME, dir_fd=fd)
        nfd = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
        if level == DEPTH // 2:
            _write(fd, b"middle.txt", b"half-way down\n")
    _write(fd, b"deep.txt", b"at the bottom\n" * 1000)
    os.symlink(b"deep.txt", b"link", dir_fd=fd)
    try:
        os.setxattr(f"/proc/self/fd/{fd}/deep.txt", b"user.where", b"bottom")
    except OSError:
        pass  # a filesystem without user xattrs: the rest is still checked
    os.close(fd)
    return os.fsencode(top) + (b"/" + NAME) * DEPTH


def _write(dir_fd: int, name: bytes, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, dir_fd=dir_fd)
    os.write(fd, data)
    os.close(fd)


def _describe(top: Path) -> list[tuple[Any, ...]]:
    """Every entry below ``top``: relative path, type, mode, size, content or link target,
    xattrs; walked by descriptor, so any depth can be read."""
    out: list[tuple[Any, ...]] = []

    def walk(fd: int, rel: bytes) -> Iterator[None]:
        for name in sorted(os.listdir(fd)):
            bname = os.fsencode(name)
            st = os.stat(bname, dir_fd=fd, follow_symlinks=False)
            path = rel + b"/" + bname
            proc = f"/proc/self/fd/{fd}/{name}"
            xattrs = sorted(
                (x, os.getxattr(proc, x, follow_symlinks=False))
                for x in os.listxattr(proc, follow_symlinks=False)
            )
            if stat.S_ISLNK(st.st_mode):
                data: bytes = os.readlink(bname, dir_fd=fd)
            elif stat.S_ISREG(st.st_mode):
                ffd = os.open(bname, os.O_RDONLY, dir_fd=fd)
                data = os.read(ffd, st.st_size + 1)
                os.close(ffd)
            else:
                data = b""
            out.append((path, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), data, xattrs))
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(bname, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                try:
                    yield from walk(sub, path)
                finally:
                    os.close(sub)

    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in walk(fd, b""):
            pass
    finally:
        os.close(fd)
    return out


def test_tree_deeper_than_path_max_round_trips(
    tmp_path: Path, repo_path: Path, run_cli: Callable[..., Any]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "top.txt").write_bytes(b"near the top\n")
    bottom = _make_deep(src)
    assert len(bottom) > 4096
    before = _describe(src)
    assert len(before) == DEPTH + 4  # the directories, top.txt, middle.txt, deep.txt, link

    res = run_cli("backup", "--repo", repo_path, "--json", src)
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["warnings"] == [] and doc["summary"]["errors"] == 0

    out = tmp_path / "out"
    res = run_cli("restore", "--repo", repo_path, "--json", "latest", "--target", out)
    assert res.code == 0, res.err
    assert res.json()["errors"] == 0
    assert _describe(out / src.relative_to("/")) == before
