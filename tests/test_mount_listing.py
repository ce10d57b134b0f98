"""The mount's directory listings, without FUSE: every entry a listing gives complete attributes
for has those a lookup of it gives (the kernel keeps them as the entry's inode), a listing read
from any position is the rest of the whole, the files' attributes are given only while files are
being looked up; and the ``struct stat`` packer writes what ctypes reads back."""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.app.context import RepoSpec, open_session
from cairn.app.passwords import PasswordSource
from cairn.ops.mount import binding
from cairn.ops.mount.fs import SnapshotFS
from cairn.ops.mount.namespace import Namespace
from cairn.ops.snapshots import load_snapshots
from tests.treegen import IS_ROOT, build, kitchen_sink


@pytest.fixture
def fs(tmp_path: Path, repo_path: Path, run_cli: Callable[..., Any]) -> Iterator[SnapshotFS]:
    src = tmp_path / "src"
    src.mkdir()
    build(src, kitchen_sink(devices=IS_ROOT))
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    repo = open_session(RepoSpec(os.fspath(repo_path), PasswordSource())).repo
    repo.load_index()
    namespace = Namespace(lambda: load_snapshots(repo, None))
    snapshot_fs = SnapshotFS(repo, namespace, 1 << 20, 0)
    try:
        yield snapshot_fs
    finally:
        snapshot_fs.close()


def _walk(fs: SnapshotFS, top: str = "/") -> Iterator[str]:
    """Every directory's path, the namespace's and the snapshots' (by ``latest`` only once)."""
    yield top
    for name, attrs, _ in fs.entries(top, False, 0):
        if name not in (b".", b"..") and stat.S_ISDIR(attrs["st_mode"]):
            yield from _walk(fs, top.rstrip("/") + "/" + os.fsdecode(name))


def test_complete_attributes_are_those_a_lookup_gives(fs: SnapshotFS) -> None:
    fs.getattr("/snapshots/latest")  # nothing looked up yet is a file
    seen = 0
    for plus in (True, False):
        for path in _walk(fs):
            for name, attrs, complete in fs.entries(path, plus, 0):
                if name in (b".", b".."):
                    continue
                looked_up = fs.getattr(path.rstrip("/") + "/" + os.fsdecode(name))
                if complete:
                    assert attrs == looked_up, (path, name)
                    seen += 1
                else:
                    assert attrs["st_ino"] == looked_up["st_ino"], (path, name)
                    assert attrs["st_mode"] == looked_up["st_mode"], (path, name)
    assert seen > 20


def test_a_listing_from_any_position_is_the_rest(fs: SnapshotFS) -> None:
    for path in _walk(fs):
        whole = list(fs.entries(path, False, 0))
        assert [n for n, _, _ in whole[:2]] == [b".", b".."]
        for start in range(len(whole) + 2):
            assert list(fs.entries(path, False, start)) == whole[start:]


def test_files_are_given_complete_only_while_files_are_looked_up(fs: SnapshotFS) -> None:
    top = next(p for p in _walk(fs) if p.count("/") > 3 and _files(fs, p, True))
    assert not any(complete for _, complete in _files(fs, top, True))  # a find: none
    name = next(n for n, _ in _files(fs, top, True))
    fs.getattr(top + "/" + os.fsdecode(name))  # an lstat of a listed file: a tar, an ls -l
    assert all(complete for _, complete in _files(fs, top, True))
    assert not any(complete for _, complete in _files(fs, top, False))  # not asked for
    for _ in range(100):  # no more files looked up: back to none
        _files(fs, top, True)
    assert not any(complete for _, complete in _files(fs, top, True))


def _files(fs: SnapshotFS, path: str, plus: bool) -> list[tuple[bytes, bool]]:
    return [
        (name, complete)
        for name, attrs, complete in fs.entries(path, plus, 0)
        if stat.S_ISREG(attrs["st_mode"])
    ]


def test_the_packer_writes_what_ctypes_reads() -> None:
    fuse = binding.load()  # libfuse 3 is installed with the test dependencies (make)
    attrs = {
        "st_ino": (1 << 62) + 3,
        "st_mode": stat.S_IFREG | 0o4755,
        "st_nlink": 3,
        "st_uid": 1000,
        "st_gid": 4_000_000_000,
        "st_rdev": 0x0803,
        "st_size": (1 << 40) + 5,
        "st_blksize": 4096,
        "st_blocks": 77,
        "st_atime": 1_700_000_000_123_456_789,
        "st_mtime": 5,
        "st_ctime": 2_000_000_000 * 1_000_000_000 + 999_999_999,
    }
    st = fuse.c_stat()
    ctypes.memset(ctypes.byref(st), 0xFF, ctypes.sizeof(st))  # what a field left out would keep
    binding.stat_packer(fuse.c_stat)(st, attrs)
    for key, value in attrs.items():
        if key in ("st_atime", "st_mtime", "st_ctime"):
            spec = getattr(st, key + "spec")
            assert (spec.tv_sec, spec.tv_nsec) == divmod(value, 1_000_000_000), key
        else:
            assert getattr(st, key) == value, key
    assert st.st_dev == 0


def test_files_read_again_from_the_cache_are_still_the_source(
    fs: SnapshotFS, tmp_path: Path
) -> None:
    """The cache keeps blobs in memory of their own: one kept as a view of a buffer that a
    reading thread reuses would change under the cache with that thread's next blob."""
    src = tmp_path / "src"
    top = next(p for p in _walk(fs) if p.startswith("/snapshots/") and p.endswith(str(src)))
    files = [p for p in src.rglob("*") if p.is_file() and not p.is_symlink()]
    assert sum(p.stat().st_size for p in files) > 500 << 10

    def read(p: Path) -> bytes:
        at, size = top + "/" + str(p.relative_to(src)), p.stat().st_size
        return b"".join(fs.read(at, 128 << 10, off, 0) for off in range(0, size, 128 << 10))

    for _ in range(2):  # the second time from the cache, after every other blob was read
        for p in files:
            assert read(p) == p.read_bytes(), p
    assert 0 < fs.cache.held <= fs.cache.limit
