"""cairn mount with real FUSE: a snapshot of the metadata-rich tree seen through the mount is the
source, entry by entry (contents, modes, owners, times, xattrs, hardlinks, holes, devices);
``cp -a`` out of it, random reads, concurrent readers, a backup while mounted, and unmounting by
signal or ``fusermount -u``; a mount point that cannot be used fails in one line."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CAIRN
from tests.treegen import IS_ROOT, build, kitchen_sink
from tests.verify import restored_diff

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse"), reason="no /dev/fuse: this system cannot mount FUSE"
)
MiB = 1 << 20
WAIT = 60  # seconds a mount is given to appear or go (never reached when all is well)


class Mounted:
    def __init__(self, repo: Path, mnt: Path, *extra: str) -> None:
        self.mnt = mnt
        self.proc = subprocess.Popen(
            [*CAIRN, "mount", "--repo", os.fspath(repo), *extra, os.fspath(mnt)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _until(lambda: os.path.ismount(mnt) or self.proc.poll() is not None)
        assert os.path.ismount(mnt), self.stop()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-u", "-z", os.fspath(self.mnt)], check=False)
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err.decode(errors="replace")


def _until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def _backup(run_cli: Callable[..., Any], repo: Path, *paths: Path) -> str:
    res = run_cli("backup", "--repo", repo, "--json", *paths)
    assert res.code == 0, res.err
    return str(res.json()["id"])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    build(src, kitchen_sink(devices=IS_ROOT))
    rng = random.Random(7)
    (src / "big").write_bytes(rng.randbytes(5 * MiB + 12345))
    with open(src / "holes", "wb") as f:  # data, a 40 MiB hole, data
        f.write(rng.randbytes(100_000))
        f.seek(40 * MiB, os.SEEK_CUR)
        f.write(rng.randbytes(70_000))
    return src


@pytest.fixture
def mounted(
    tmp_path: Path, repo_path: Path, source: Path, run_cli: Callable[..., Any]
) -> Iterator[Mounted]:
    _backup(run_cli, repo_path, source)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    m = Mounted(repo_path, mnt)
    try:
        yield m
    finally:
        code, err = m.stop()
        assert code == 0, err
        assert not os.path.ismount(mnt)


def _in_snapshot(m: Mounted, source: Path, group: str = "snapshots/latest") -> Path:
    return m.mnt / group / os.fspath(source).lstrip("/")


def test_the_mounted_snapshot_is_the_source_entry_by_entry(
    mounted: Mounted, source: Path, repo_path: Path
) -> None:
    seen = _in_snapshot(mounted, source)
    assert restored_diff(source, seen, repo_path) == []
    holes = os.stat(seen / "holes")
    assert holes.st_size == os.stat(source / "holes").st_size
    # the runs of zeros are not counted as stored (but the chunks where data ends and the hole
    # begins, and where it ends, hold zeros too)
    assert holes.st_blocks * 512 < 12 * MiB


def test_groupings_and_latest_links(
    mounted: Mounted, source: Path, repo_path: Path, run_cli: Callable[..., Any]
) -> None:
    res = run_cli("snapshots", "--repo", repo_path, "--json")
    snap = res.json()[0]
    (name,) = [n for n in os.listdir(mounted.mnt / "snapshots") if n != "latest"]
    assert os.readlink(mounted.mnt / "snapshots" / "latest") == name
    assert sorted(os.listdir(mounted.mnt)) == ["hosts", "ids", "snapshots", "tags"]
    assert os.listdir(mounted.mnt / "ids") == [snap["id"][:8], "latest"]
    assert sorted(os.listdir(mounted.mnt / "hosts" / snap["host"])) == [name, "latest"]
    for group in (f"ids/{snap['id'][:8]}", f"hosts/{snap['host']}/latest"):
        assert (_in_snapshot(mounted, source, group) / "big").read_bytes() == (
            source / "big"
        ).read_bytes()
    hard = [
        p
        for p in _in_snapshot(mounted, source).rglob("*")
        if p.is_file() and not p.is_symlink() and os.lstat(p).st_nlink > 1
    ]
    inodes = {os.lstat(p).st_ino for p in hard}
    assert hard and len(inodes) < len(hard)  # a hardlink group is one inode


def test_cp_a_out_of_the_mount(
    mounted: Mounted, source: Path, repo_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    subprocess.run(["cp", "-a", _in_snapshot(mounted, source), out], check=True)
    assert restored_diff(source, out, repo_path) == []


def test_random_and_concurrent_reads(mounted: Mounted, source: Path) -> None:
    seen = _in_snapshot(mounted, source)
    rng = random.Random(3)
    for name in ("big", "holes"):
        want = (source / name).read_bytes()
        with open(seen / name, "rb") as f:
            for _ in range(200):
                at, n = rng.randrange(len(want) + 10), rng.randrange(1, 300_000)
                f.seek(at)
                assert f.read(n) == want[at : at + n]

    files = [p for p in source.rglob("*") if p.is_file() and not p.is_symlink()]

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    want = {p: digest(p) for p in files}
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: digest(seen / p.relative_to(source)), files * 4))
    assert got == [want[p] for p in files * 4]


def test_a_backup_taken_while_mounted_appears(
    mounted: Mounted, source: Path, repo_path: Path, run_cli: Callable[..., Any]
) -> None:
    (source / "new").write_bytes(b"after the mount")
    new_id = _backup(run_cli, repo_path, source)
    ids = mounted.mnt / "ids"
    _until(lambda: new_id[:8] in os.listdir(ids))
    assert os.readlink(ids / "latest") == new_id[:8]
    assert (_in_snapshot(mounted, source, f"ids/{new_id[:8]}") / "new").read_bytes() == (
        b"after the mount"
    )


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "fusermount"])
def test_unmounts_cleanly(
    how: str, tmp_path: Path, repo_path: Path, source: Path, run_cli: Callable[..., Any]
) -> None:
    _backup(run_cli, repo_path, source / "big")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    m = Mounted(repo_path, mnt)
    if how == "fusermount":
        subprocess.run(["fusermount3", "-u", os.fspath(mnt)], check=True)
        code, err = m.stop(0)
    else:
        code, err = m.stop(getattr(signal, how))
    assert code == 0, err
    assert err == ""  # nothing said on stderr by a mount that went well (libfuse's warnings)
    assert not os.path.ismount(mnt)
    assert os.listdir(mnt) == []


def test_a_mount_point_that_cannot_be_used_fails_in_one_line(
    tmp_path: Path, repo_path: Path, cairn_proc: Callable[..., Any]
) -> None:
    missing = cairn_proc("mount", "--repo", repo_path, tmp_path / "nowhere")
    assert missing.code == 2
    assert missing.err.strip() == f"cairn: error: mount point {tmp_path / 'nowhere'} does not exist"
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    res = cairn_proc("mount", "--repo", repo_path, full)
    assert res.code == 2
    assert res.err.strip() == f"cairn: error: mount point {full} is not empty"
    plain = tmp_path / "plain"
    plain.write_text("x")
    res = cairn_proc("mount", "--repo", repo_path, plain)
    assert res.code == 2
    assert res.err.strip() == f"cairn: error: mount point {plain} is not a directory"
    bad = cairn_proc("mount", "--repo", repo_path, "--cache-size", "lots", tmp_path)
    assert bad.code == 2 and "--cache-size" in bad.err
    assert shutil.which("fusermount3") is not None or sys.platform != "linux"


def test_a_prune_while_mounted_never_fails_an_open_file(
    tmp_path: Path, repo_path: Path, run_cli: Callable[..., Any]
) -> None:
    src = tmp_path / "prunesrc"
    src.mkdir()
    rng = random.Random(11)
    for i in range(40):  # small files stored together: packs of kept and of forgotten files
        (src / f"f{i:02}").write_bytes(rng.randbytes(60_000))
    first = _backup(run_cli, repo_path, src)
    for i in range(0, 40, 2):
        (src / f"f{i:02}").unlink()
    _backup(run_cli, repo_path, src)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    m = Mounted(repo_path, mnt)
    try:
        seen = _in_snapshot(m, src)
        opened = [(p, open(seen / p.name, "rb")) for p in sorted(src.iterdir())]  # noqa: SIM115
        assert run_cli("forget", "--repo", repo_path, first).code == 0
        res = run_cli("prune", "--repo", repo_path, "--max-unused", "0%", "--json")
        assert res.code == 0, res.err
        assert res.json()["packs_repacked"] > 0, res.out
        for p, f in opened:  # first read after the prune moved the blobs
            with f:
                assert f.read() == p.read_bytes()
        assert (seen / "f01").read_bytes() == (src / "f01").read_bytes()
    finally:
        code, err = m.stop()
    assert code == 0, err
