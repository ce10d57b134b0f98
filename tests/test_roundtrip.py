"""A restore gives back exactly what was backed up: contents, types, modes, owners, times (ns),
xattrs, hardlinks, device numbers, odd names; and restore's selection and safety options."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings

from tests.treecmp import atimes, describe, diff, read_like_any_program
from tests.treegen import IS_ROOT, Dir, build, kitchen_sink, trees
from tests.verify import restored_diff

MiB = 1 << 20
OLD = 1_500_000_000_123_456_789  # 2017, with nanoseconds: older than any ctime of the run


def backup(run_cli: Callable[..., Any], repo: Path, *paths: Path) -> str:
    res = run_cli("backup", "--repo", repo, "--json", *paths)
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["warnings"] == []
    assert doc["summary"]["errors"] == 0
    return doc["id"]


def restore(
    run_cli: Callable[..., Any], repo: Path, spec: str, target: Path, *extra: str
) -> dict[str, object]:
    res = run_cli("restore", "--repo", repo, "--json", spec, "--target", target, *extra)
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["errors"] == 0
    return doc


def write(path: Path, data: bytes, mode: int = 0o644, times: int = OLD) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    os.utime(path, ns=(times, times + 1))
    return path


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- property


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tree=trees(devices=IS_ROOT))
@example(tree=kitchen_sink(devices=IS_ROOT))
def test_restore_is_identical_to_source(tree: Dir, repo_path: Path, run_cli) -> None:
    base = Path(tempfile.mkdtemp(prefix="cairn-roundtrip-"))
    try:
        src = base / "src"
        src.mkdir()
        build(src, tree)
        before = describe(src)
        snap = backup(run_cli, repo_path, src)
        out = base / "out"
        restore(run_cli, repo_path, f"{snap}:{src}", out)
        assert diff(before, describe(out)) == []
    finally:
        shutil.rmtree(base)


# ---------------------------------------------------------------------------- file contents


def test_sparse_file_is_restored_sparse(tmp_path: Path, repo_path: Path, run_cli) -> None:
    size = 200 * MiB
    src = tmp_path / "src"
    src.mkdir()
    sparse = src / "disk.img"
    head, tail = os.urandom(64 << 10), os.urandom(64 << 10)
    sparse.write_bytes(head)
    os.truncate(sparse, size)
    with open(sparse, "r+b") as f:
        f.seek(size - len(tail))
        f.write(tail)
    os.utime(sparse, ns=(OLD, OLD))
    assert os.stat(sparse).st_blocks * 512 < 4 * MiB  # the source really is sparse
    ends_in_hole = src / "grown.img"  # the restore must extend it past its last data
    ends_in_hole.write_bytes(head)
    os.truncate(ends_in_hole, 20 * MiB)
    want = digest(sparse)
    st_src = os.stat(sparse)

    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}", out)

    got = out / "disk.img"
    st = os.stat(got)
    assert st.st_size == size
    assert st.st_blocks * 512 < size // 8, f"{st.st_blocks * 512} bytes allocated"
    with open(got, "rb") as f:
        assert f.read(len(head)) == head
        f.seek(size - len(tail))
        assert f.read() == tail
    assert digest(got) == want
    assert (out / "grown.img").read_bytes() == ends_in_hole.read_bytes()
    assert (out / "grown.img").stat().st_blocks * 512 <= 8 * MiB  # a chunk or two, then holes
    assert (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) == (
        st_src.st_mode,
        st_src.st_uid,
        st_src.st_gid,
        st_src.st_mtime_ns,
    )


@pytest.mark.parametrize("order", ["file", "pack"])
def test_a_sparse_file_takes_what_it_took_on_the_source(
    tmp_path: Path, repo_path: Path, run_cli, order: str
) -> None:
    """100 MiB holding a few bytes in three places: the restore leaves holes at file-system block
    granularity, so it allocates about the source's few blocks, not a chunk (4 MiB) or a 32 KiB
    block around each."""
    src = tmp_path / "src"
    src.mkdir()
    sparse = src / "few.img"
    with open(sparse, "wb") as f:
        for at in (0, 37 * MiB + 5000, 100 * MiB - 3):
            f.seek(at)
            f.write(b"abc")
    source = os.stat(sparse).st_blocks * 512
    assert source <= 3 * 4096  # the source really is sparse

    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}", out, "--read-order", order)

    got = out / "few.img"
    assert os.stat(got).st_blocks * 512 <= source + 4096, os.stat(got).st_blocks * 512
    assert subprocess.run(["cmp", sparse, got], check=False).returncode == 0


@pytest.mark.parametrize("order", ["file", "pack"])
def test_holes_cost_a_restore_nothing(tmp_path: Path, repo_path: Path, run_cli, order: str) -> None:
    """A 2 GiB file with four written blocks: the blob of zeros is never read nor written, and
    the zeros around each block in its chunk stay holes too, so the restore writes the blocks
    and allocates about that much, whichever order it reads in; --verify reads it back."""
    size = 2 << 30
    src = tmp_path / "src"
    src.mkdir()
    sparse = src / "vm.img"
    blocks = {at: os.urandom(64 << 10) for at in (0, 700 * MiB + 4096, 1500 * MiB, size - 65536)}
    with open(sparse, "wb") as f:
        for at, data in blocks.items():
            f.seek(at)
            f.write(data)
    assert os.stat(sparse).st_size == size

    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    doc = restore(run_cli, repo_path, f"latest:{src}", out, "--read-order", order, "--verify")

    assert doc["verified"] == 1
    assert doc["bytes_written"] <= 2 * 64 * 4096, doc  # the blocks, at most a hole block more
    got = out / "vm.img"
    st = os.stat(got)
    assert st.st_size == size
    assert st.st_blocks * 512 <= 1 * MiB, f"{st.st_blocks * 512} bytes allocated"
    with open(got, "rb") as f:
        for at, data in blocks.items():
            f.seek(at)
            assert f.read(len(data)) == data
    assert subprocess.run(["cmp", sparse, got], check=False).returncode == 0


def test_empty_file_and_empty_dir(tmp_path: Path, repo_path: Path, run_cli) -> None:
    src = tmp_path / "src"
    (src / "empty-dir").mkdir(parents=True)
    write(src / "empty", b"", mode=0o640)
    os.utime(src / "empty-dir", ns=(OLD, OLD))
    before = describe(src)
    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    doc = restore(run_cli, repo_path, f"latest:{src}", out)
    assert doc["files"] == 1 and doc["dirs"] == 1
    assert diff(before, describe(out)) == []
    assert os.stat(out / "empty").st_size == 0


def test_large_random_file(tmp_path: Path, repo_path: Path, run_cli) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(src / "random.bin", os.urandom(20 * MiB))
    before = describe(src)
    backup(run_cli, repo_path, src)
    res = run_cli("ls", "--repo", repo_path, "--json", "latest", src / "random.bin")
    assert res.code == 0, res.err
    assert len(json.loads(res.out)["content"]) > 1  # several chunks, reassembled in order
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}", out)
    assert diff(before, describe(out)) == []


# ---------------------------------------------------------------------------- --verify


def _verify_tree(src: Path) -> None:
    (src / "sub").mkdir(parents=True)
    write(src / "multi-chunk.bin", os.urandom(3 * MiB))
    write(src / "small.txt", b"hello")
    write(src / "empty", b"")
    write(src / "sub" / "inner.txt", b"inner" * 1000)
    os.symlink("small.txt", src / "link")
    os.utime(src / "link", ns=(OLD, OLD), follow_symlinks=False)
    os.utime(src / "sub", ns=(OLD, OLD))


def test_verify_reports_verified_files(tmp_path: Path, repo_path: Path, run_cli) -> None:
    src = tmp_path / "src"
    _verify_tree(src)
    backup(run_cli, repo_path, src)
    doc = restore(run_cli, repo_path, f"latest:{src}", tmp_path / "out", "--verify")
    assert doc["files"] == 4
    assert doc["verified"] == 4
    doc = restore(run_cli, repo_path, f"latest:{src}", tmp_path / "out2")
    assert doc["verified"] == 0  # nothing is verified unless asked


def test_verify_leaves_the_restored_tree_identical(
    tmp_path: Path, repo_path: Path, run_cli
) -> None:
    """Reading files back must not change what was restored (their access times included)."""
    src = tmp_path / "src"
    _verify_tree(src)
    before = describe(src)
    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}", out, "--verify")
    assert diff(before, describe(out)) == []


def test_restored_atimes_are_those_the_backup_recorded_not_the_sources_of_now(
    tmp_path: Path, repo_path: Path, run_cli
) -> None:
    """What made test_s3's transient-faults test flaky, made to happen every time: another
    program lists and reads the (freshly made) source between the backup and the comparison.
    On a relatime mount that moves the source's atimes (the first read after a change always
    updates them), so a restore can equal the source as it was backed up, never as it is now."""
    src = tmp_path / "src"
    _verify_tree(src)
    before = describe(src)
    backup(run_cli, repo_path, src)
    read_like_any_program(src)
    moved = atimes(describe(src)) != atimes(before)
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}", out, "--verify")
    assert diff(before, describe(out)) == []  # atimes included: as the backup saw them
    assert restored_diff(src, out, repo_path) == []
    if not moved:
        pytest.skip("this mount never updates atimes (noatime): the reads changed nothing")
    assert diff(describe(src), describe(out)) != []  # the comparison the flaky test made


# ---------------------------------------------------------------------------- parts of a snapshot


def _small_tree(src: Path) -> None:
    (src / "sub" / "deeper").mkdir(parents=True)
    write(src / "top.txt", b"top")
    write(src / "sub" / "x.txt", b"x" * 5000, mode=0o600)
    write(src / "sub" / "deeper" / "y.bin", os.urandom(100_000), mode=0o4755)
    os.symlink("../x.txt", src / "sub" / "deeper" / "up")
    os.chown(src / "sub" / "x.txt", 1234, 5678)
    for d in (src / "sub" / "deeper", src / "sub"):
        os.utime(d, ns=(OLD + 7, OLD + 9))


def test_restore_subpath(tmp_path: Path, repo_path: Path, run_cli) -> None:
    src = tmp_path / "src"
    _small_tree(src)
    before = describe(src / "sub")
    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}/sub", out)
    assert diff(before, describe(out)) == []


def test_restore_single_file(tmp_path: Path, repo_path: Path, run_cli) -> None:
    src = tmp_path / "src"
    _small_tree(src)
    before = describe(src / "sub")
    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    doc = restore(run_cli, repo_path, f"latest:{src}/sub/x.txt", out)
    assert doc["files"] == 1
    assert diff({b"x.txt": before[b"x.txt"]}, describe(out)) == []


def _selection_tree(src: Path) -> None:
    for d in ("keep/inner", "sub/deep"):
        (src / d).mkdir(parents=True)
    for name in (
        "a.txt",
        "b.log",
        "name with space.txt",
        "keep/c.txt",
        "keep/d.log",
        "keep/inner/e.txt",
        "sub/x.txt",
        "sub/keep",
        "sub/deep/y.log",
    ):
        write(src / name, name.encode())
    for d in ("keep/inner", "sub/deep", "keep", "sub"):
        os.utime(src / d, ns=(OLD, OLD + 3))


ALL = {
    "a.txt",
    "b.log",
    "name with space.txt",
    "keep",
    "keep/c.txt",
    "keep/d.log",
    "keep/inner",
    "keep/inner/e.txt",
    "sub",
    "sub/x.txt",
    "sub/keep",
    "sub/deep",
    "sub/deep/y.log",
}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--include", "*.txt"],
            {
                "a.txt",
                "name with space.txt",
                "keep",
                "keep/c.txt",
                "keep/inner",
                "keep/inner/e.txt",
                "sub",
                "sub/x.txt",
            },
        ),
        (["--exclude", "*.log"], ALL - {"b.log", "keep/d.log", "sub/deep/y.log"}),
        (
            ["--include", "keep"],
            {
                "keep",
                "keep/c.txt",
                "keep/d.log",
                "keep/inner",
                "keep/inner/e.txt",
                "sub",
                "sub/keep",
            },
        ),
        (
            ["--include", "keep", "--exclude", "*.log"],
            {"keep", "keep/c.txt", "keep/inner", "keep/inner/e.txt", "sub", "sub/keep"},
        ),
        (
            ["--exclude", "keep"],
            ALL
            - {"keep", "keep/c.txt", "keep/d.log", "keep/inner"}
            - {"keep/inner/e.txt", "sub/keep"},
        ),
        (["--include", "{src}/sub/x.txt"], {"sub", "sub/x.txt"}),
        (["--include", "sub/*.txt"], {"sub", "sub/x.txt"}),
        (["--exclude", "sub/deep"], ALL - {"sub/deep", "sub/deep/y.log"}),
        (
            ["--include", "{src}/keep/inner", "--include", "b.*"],
            {"b.log", "keep", "keep/inner", "keep/inner/e.txt"},
        ),
        # as in restic: a '!' line takes back what an earlier include line matched
        (
            ["--include", "{src}/keep", "--include", "!{src}/keep/inner"],
            {"keep", "keep/c.txt", "keep/d.log"},
        ),
        (
            ["--include", "{src}/sub/*", "--include", "!*.txt"],
            {"sub", "sub/keep", "sub/deep", "sub/deep/y.log"},
        ),
        (["--exclude", "*", "--exclude", "!*.log"], {"b.log"}),
    ],
)
def test_restore_include_exclude(
    tmp_path: Path, repo_path: Path, run_cli, options: list[str], expected: set[str]
) -> None:
    src = tmp_path / "src"
    _selection_tree(src)
    before = describe(src)
    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}", out, *[o.format(src=src) for o in options])
    after = describe(out)
    assert {k.decode() for k in after} == expected
    assert diff({k: before[k] for k in after}, after) == []


def test_non_utf8_paths_on_the_command_line(tmp_path: Path, repo_path: Path, cairn_proc) -> None:
    """Raw bytes in argv (as a shell passes them): the backup path, the subpath, a pattern."""
    src = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9 src"))
    sub = Path(os.fsdecode(os.fsencode(src) + b"/\xff\xfe dir"))
    sub.mkdir(parents=True)
    write(src / "top", b"top")
    write(Path(os.fsdecode(os.fsencode(sub) + b"/na\xefve.txt")), b"latin-1 name")
    write(sub / "other.txt", b"not selected")
    os.utime(sub, ns=(OLD, OLD))
    before = describe(sub)
    res = cairn_proc("backup", "--repo", repo_path, os.fsencode(src))
    assert res.code == 0, res.err
    out = tmp_path / "out"
    res = cairn_proc(
        "restore",
        "--repo",
        repo_path,
        b"latest:" + os.fsencode(sub),
        "--target",
        out,
        "--include",
        b"na\xef*",
    )
    assert res.code == 0, res.err
    after = describe(out)
    assert set(after) == {b"na\xefve.txt"}
    assert diff({k: before[k] for k in after}, after) == []


# ---------------------------------------------------------------------------- existing targets


def test_restore_over_existing_files_never_follows_symlinks(
    tmp_path: Path, repo_path: Path, run_cli
) -> None:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "was-a-file").mkdir()
    write(src / "a.txt", b"from the snapshot")
    write(src / "through-link.txt", b"snapshot content, not the victim's")
    write(src / "hardlinked.txt", b"new content for the hardlinked name")
    write(src / "sub" / "b.txt", b"b")
    write(src / "sub" / "deeper" / "c.txt", b"c")
    write(src / "was-a-file" / "d.txt", b"d")
    for d in ("sub/deeper", "sub", "was-a-file"):
        os.utime(src / d, ns=(OLD, OLD))
    before = describe(src)
    backup(run_cli, repo_path, src)

    outside = tmp_path / "outside"
    (outside / "victim-dir" / "deeper").mkdir(parents=True)
    write(outside / "victim.txt", b"victim: must not change")
    write(outside / "hard-victim.txt", b"hard victim: must not change")
    write(outside / "victim-dir" / "deeper" / "keep.txt", b"stays")
    outside_before = describe(outside)

    out = tmp_path / "out"
    out.mkdir()
    write(out / "a.txt", b"an older and much longer content that must not survive" * 100, 0o400)
    os.symlink(outside / "victim.txt", out / "through-link.txt")
    os.link(outside / "hard-victim.txt", out / "hardlinked.txt")
    os.symlink(outside / "victim-dir", out / "sub")
    write(out / "was-a-file", b"a file where the snapshot has a directory")

    restore(run_cli, repo_path, f"latest:{src}", out)
    assert diff(before, describe(out)) == []
    assert diff(outside_before, describe(outside)) == []


def test_restore_twice_into_the_same_target(tmp_path: Path, repo_path: Path, run_cli) -> None:
    src = tmp_path / "src"
    _small_tree(src)
    before = describe(src)
    backup(run_cli, repo_path, src)
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}", out)
    restore(run_cli, repo_path, f"latest:{src}", out)
    assert diff(before, describe(out)) == []


@pytest.mark.skipif(not IS_ROOT, reason="a set-group-ID target of another group needs root")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000], ids=["022", "077", "000"])
def test_modes_and_owners_whatever_the_umask_and_a_setgid_target(
    tmp_path: Path, repo_path: Path, run_cli, umask: int
) -> None:
    """Files are created with their final mode where the umask allows it and keep root's
    owner without a chown; neither shortcut may leak the umask or a set-group-ID target's
    group into the restored files, small or written in parts."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    modes = [0o644, 0o664, 0o666, 0o600, 0o000, 0o4755, 0o2750, 0o1644, 0o755]
    for mode in modes:
        write(src / f"f{mode:o}", f"{mode:o}".encode(), mode)
        write(src / "sub" / f"f{mode:o}", b"", mode)
    write(src / "large", os.urandom(9 * MiB), 0o664)
    other = tmp_path / "other"
    other.mkdir()
    os.chown(other, 4321, 4321)
    write(other / "theirs", b"x", 0o640)
    os.chown(other / "theirs", 4321, 4321)
    os.chown(other, 0, 0)
    before = describe(src)
    mine = backup(run_cli, repo_path, src)
    theirs = backup(run_cli, repo_path, other)
    out = tmp_path / "out"  # set-group-ID, of another group
    out.mkdir()
    os.chown(out, 0, 4321)
    os.chmod(out, 0o2775)
    held = tmp_path / "held"  # only a directory it already holds is
    (held / "sub").mkdir(parents=True)
    os.chown(held / "sub", 0, 4321)
    os.chmod(held / "sub", 0o2775)
    old = os.umask(umask)
    try:
        restore(run_cli, repo_path, f"{mine}:{src}", out / "a")
        restore(run_cli, repo_path, f"{mine}:{src}", out)
        restore(run_cli, repo_path, f"{mine}:{src}", held)
        restore(run_cli, repo_path, f"{theirs}:{other}", out / "c")
    finally:
        os.umask(old)
    assert diff(before, describe(out / "a")) == []
    for top in (out, held):
        for mode in modes:
            for path in (top / f"f{mode:o}", top / "sub" / f"f{mode:o}"):
                st = path.stat()
                assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, 0, 0), path
        st = (top / "large").stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o664, 0, 0)
    st = (out / "c" / "theirs").stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 4321, 4321)


def test_the_walk_waits_for_few_entries_and_finishes_directories_out_of_order(
    tmp_path: Path, repo_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories walked after one that waits for a slow file are finished as soon as their
    own files are read, and the walk waits once ``MAX_WAITING`` entries wait, so memory does
    not grow with the tree; the snapshot is the same as with no bound."""
    from cairn.ops.backup import archiver

    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    write(src / "a" / "slow", os.urandom(2 * MiB))  # a large file: read on its own thread
    for i in range(40):
        (src / f"b{i:02d}").mkdir()
        for j in range(3):
            write(src / f"b{i:02d}" / f"f{j}", f"{i} {j}".encode())
    before = describe(src)
    unbounded = backup(run_cli, repo_path, src, "--no-cache")
    (tmp_path / "beside-src").write_bytes(b"")  # an ancestor changes, as others' files do to /tmp

    released = threading.Event()  # the slow file is held until 20 directories after it are done
    finished: list[bytes] = []
    waiting: list[int] = []
    save_files, finish, finish_later = (
        archiver.FileSaver.save_files,
        archiver.Archiver._finish,
        archiver.Archiver._finish_later,
    )

    def slow_save_files(self, items):  # type: ignore[no-untyped-def]
        if any(path.endswith(b"/slow") for path, *_ in items):
            released.wait(10)
        return save_files(self, items)

    def spy_finish(self, d) -> None:  # type: ignore[no-untyped-def]
        finish(self, d)
        finished.append(d.node.name)
        if sum(n.startswith(b"b") for n in finished) >= 20:
            released.set()

    def spy_finish_later(self, d, parent) -> None:  # type: ignore[no-untyped-def]
        finish_later(self, d, parent)
        waiting.append(self._waiting)

    monkeypatch.setattr(archiver, "MAX_WAITING", 6)
    monkeypatch.setattr(archiver.FileSaver, "save_files", slow_save_files)
    monkeypatch.setattr(archiver.Archiver, "_finish", spy_finish)
    monkeypatch.setattr(archiver.Archiver, "_finish_later", spy_finish_later)
    bounded = backup(run_cli, repo_path, src, "--no-cache")

    assert max(waiting) <= 6
    assert finished.index(b"a") >= 20  # not in walk order: the others did not wait for it
    # the source's own tree: the snapshot's root also holds the metadata of the source's
    # ancestors (/tmp and below), which other processes change between the two backups
    trees = [_ls(run_cli, repo_path, snap)[str(src)]["subtree"] for snap in (unbounded, bounded)]
    assert trees[0] == trees[1]
    out = tmp_path / "out"
    restore(run_cli, repo_path, f"{bounded}:{src}", out)
    assert diff(before, describe(out)) == []


# ---------------------------------------------------------------------------- owners


def _ls(run_cli, repo: Path, snap: str = "latest") -> dict[str, dict[str, object]]:
    res = run_cli("ls", "--repo", repo, "--json", snap)
    assert res.code == 0, res.err
    docs = [json.loads(line) for line in res.out.splitlines() if line.strip()]
    return {d["path"]: d for d in docs}


def _unused_id(taken: Callable[[int], object], start: int) -> int:
    for i in range(start, start + 1000):
        try:
            taken(i)
        except KeyError:
            return i
    raise AssertionError("no free id")


def test_owner_names_are_recorded_and_restored(tmp_path: Path, repo_path: Path, run_cli) -> None:
    user = pwd.getpwnam("daemon")
    group = grp.getgrnam("daemon")
    free_uid = _unused_id(pwd.getpwuid, 4242)
    free_gid = _unused_id(grp.getgrgid, 4343)
    src = tmp_path / "src"
    src.mkdir()
    write(src / "named", b"owned by daemon")
    write(src / "numeric", b"owned by nobody with a name")
    os.chown(src / "named", user.pw_uid, group.gr_gid)
    os.chown(src / "numeric", free_uid, free_gid)
    backup(run_cli, repo_path, src)

    listing = _ls(run_cli, repo_path)
    named, numeric = listing[f"{src}/named"], listing[f"{src}/numeric"]
    assert (named["user"], named["group"]) == ("daemon", "daemon")
    assert (named["uid"], named["gid"]) == (user.pw_uid, group.gr_gid)
    assert (numeric["user"], numeric["group"]) == (None, None)
    assert (numeric["uid"], numeric["gid"]) == (free_uid, free_gid)

    out = tmp_path / "out"
    restore(run_cli, repo_path, f"latest:{src}", out)
    st = os.stat(out / "named")
    assert (st.st_uid, st.st_gid) == (user.pw_uid, group.gr_gid)
    st = os.stat(out / "numeric")
    assert (st.st_uid, st.st_gid) == (free_uid, free_gid)


_WITH_ACCOUNTS = (
    'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"'
)


def _cairn_with_accounts(
    tmp_path: Path, tag: str, users: dict[str, int], groups: dict[str, int], *args: object
) -> subprocess.CompletedProcess[str]:
    """Runs cairn in a private mount namespace whose /etc/passwd and /etc/group have extra
    accounts: a machine where those names exist, with these ids."""
    passwd = Path("/etc/passwd").read_text().rstrip("\n") + "\n"
    passwd += "".join(f"{n}:x:{i}:{i}::/nonexistent:/usr/sbin/nologin\n" for n, i in users.items())
    group = Path("/etc/group").read_text().rstrip("\n") + "\n"
    group += "".join(f"{n}:x:{i}:\n" for n, i in groups.items())
    (tmp_path / f"passwd-{tag}").write_text(passwd)
    (tmp_path / f"group-{tag}").write_text(group)
    cmd = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        _WITH_ACCOUNTS,
        "sh",
        str(tmp_path / f"passwd-{tag}"),
        str(tmp_path / f"group-{tag}"),
        sys.executable,
        "-m",
        "cairn",
        *[os.fspath(a) for a in args],
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_owner_names_win_over_ids_and_ids_are_kept_without_names(
    tmp_path: Path, repo_path: Path, run_cli
) -> None:
    uid = _unused_id(pwd.getpwuid, 4242)
    gid = _unused_id(grp.getgrgid, 4343)
    other_uid = _unused_id(pwd.getpwuid, 5252)
    other_gid = _unused_id(grp.getgrgid, 5353)
    for name, lookup in (("cairn-rt-user", pwd.getpwnam), ("cairn-rt-group", grp.getgrnam)):
        with pytest.raises(KeyError):
            lookup(name)
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    write(src / "dir" / "file", b"owned by a named account")
    os.symlink("dir/file", src / "link")
    os.mkfifo(src / "fifo")
    for p in (src / "dir" / "file", src / "dir", src / "fifo", src / "link"):
        os.chown(p, uid, gid, follow_symlinks=False)

    # the source machine knows the names
    _cairn_with_accounts(
        tmp_path,
        "source",
        {"cairn-rt-user": uid},
        {"cairn-rt-group": gid},
        "backup",
        "--repo",
        repo_path,
        src,
    )
    listing = _ls(run_cli, repo_path)
    for rel in ("dir", "dir/file", "fifo", "link"):
        doc = listing[f"{src}/{rel}"]
        assert (doc["user"], doc["group"], doc["uid"], doc["gid"]) == (
            "cairn-rt-user",
            "cairn-rt-group",
            uid,
            gid,
        )

    # a machine where the same names have other ids: the names win
    mapped = tmp_path / "mapped"
    _cairn_with_accounts(
        tmp_path,
        "target",
        {"cairn-rt-user": other_uid},
        {"cairn-rt-group": other_gid},
        "restore",
        "--repo",
        repo_path,
        f"latest:{src}",
        "--target",
        mapped,
    )
    # this machine, which does not know the names: the numeric ids are kept
    numeric = tmp_path / "numeric"
    restore(run_cli, repo_path, f"latest:{src}", numeric)
    for rel in ("dir", "dir/file", "fifo", "link"):
        st = os.lstat(mapped / rel)
        assert (st.st_uid, st.st_gid) == (other_uid, other_gid), rel
        st = os.lstat(numeric / rel)
        assert (st.st_uid, st.st_gid) == (uid, gid), rel


def _deep_listing(root: str) -> list[tuple[str, int, int, bytes]]:
    """(relative path, mode, mtime, content) of everything below ``root``, walked with an
    explicit stack (os.makedirs, os.walk and tests/treecmp.py recurse)."""
    out, stack = [], [""]
    while stack:
        rel = stack.pop()
        for entry in sorted(
            os.scandir(os.path.join(root, rel) if rel else root), key=lambda e: e.name
        ):
            path = os.path.join(rel, entry.name)
            st = entry.stat(follow_symlinks=False)
            data = b""
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
            else:
                with open(entry.path, "rb") as f:
                    data = f.read()
            out.append((path, st.st_mode, st.st_mtime_ns, data))
    return sorted(out)


def _remove_deep(root: str) -> None:
    """Removes a tree of any depth (shutil.rmtree, and so pytest's clean-up of old temporary
    directories, recurses), deepest entries first."""
    dirs, stack = [], [root]
    while stack:
        d = stack.pop()
        dirs.append(d)
        for entry in os.scandir(d):
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            else:
                os.unlink(entry.path)
    for d in reversed(dirs):
        os.rmdir(d)


@pytest.fixture
def deep_tmp(tmp_path):  # type: ignore[no-untyped-def]
    yield tmp_path
    for name in ("src", "out"):
        if (tmp_path / name).exists():
            _remove_deep(str(tmp_path / name))


def test_a_tree_deeper_than_the_interpreters_recursion_limit(deep_tmp, run_cli):
    """The backup's walk, the restore and the listing take no stack per level: a tree
    1,500 directories deep (deeper than Python's default recursion limit of 1,000; a path
    of 3,000 bytes, within PATH_MAX) backs up and restores exactly."""
    import sys

    assert sys.getrecursionlimit() < 1500
    tmp_path = deep_tmp
    src = tmp_path / "src"
    deep = str(src)
    os.mkdir(deep)
    for _ in range(1500):
        deep = os.path.join(deep, "d")
        os.mkdir(deep)
    with open(os.path.join(deep, "f"), "wb") as f:
        f.write(b"at the bottom\n")
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo).code == 0
    res = run_cli("backup", "--repo", repo, src)
    assert res.code == 0, res.err
    out = tmp_path / "out"
    res = run_cli("restore", "--repo", repo, f"latest:{src}", "--target", out)
    assert res.code == 0, res.err
    assert _deep_listing(str(out)) == _deep_listing(str(src))
    res = run_cli("ls", "--repo", repo, "latest", "--json")
    assert res.code == 0 and len(res.out.splitlines()) > 1500
