"""Whoever can write into a restore target must not be able to redirect the restore's metadata.

Between the moment restore creates an entry and the moment it applies the entry's owner, mode,
extended attributes and times, another user who can write into the target can replace the
entry by a symlink to any file. Restore runs as root here, so a followed symlink would make a
root-owned 0600 file world-writable (or give it away). The swap is made at the exact moment of
the race by a hook around the system call that creates the entry (or reads its type).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cairn.model.node import BLOCKDEV, CHARDEV, FIFO, Node
from cairn.ops.fsapply import apply_by_name
from cairn.ops.safefs import Target
from tests.craft import Crafter, create_repo, open_repo

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the race matters for a root restore")

SECRET = b"root's secret\n"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "shadow"
    victim.parent.mkdir()
    victim.write_bytes(SECRET)
    os.chmod(victim, 0o600)
    os.utime(victim, ns=(1_000_000_000, 2_000_000_000))
    return victim


def _state(p: Path) -> tuple[int, int, int, int, list[str]]:
    st = os.stat(p)
    return st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, os.listxattr(p)


def _swap_for_symlink(parent_fd: int, name: bytes, to: Path) -> None:
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        os.rmdir(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)
    os.symlink(os.fsencode(to), name, dir_fd=parent_fd)


@pytest.mark.parametrize("kind", [FIFO, CHARDEV, BLOCKDEV])
def test_special_file_swapped_for_a_symlink_is_not_followed(kind, tmp_path):
    victim = _victim(tmp_path)
    before = _state(victim)
    target = tmp_path / "target"
    target.mkdir()
    pfd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if kind == FIFO:
            os.mkfifo(b"entry", 0o600, dir_fd=pfd)
        else:
            ifmt = stat.S_IFCHR if kind == CHARDEV else stat.S_IFBLK
            os.mknod(b"entry", ifmt | 0o600, os.makedev(1, 3), dir_fd=pfd)
        _swap_for_symlink(pfd, b"entry", victim)  # the race, won by the other user
        node = Node(
            name=b"entry",
            type=kind,
            mode=0o6777,
            uid=4242,
            gid=4242,
            mtime=5_000_000_000,
            atime=5_000_000_000,
            xattrs=[(b"trusted.pwned", b"1")],
        )
        problems = apply_by_name(pfd, b"entry", node)
    finally:
        os.close(pfd)
    assert _state(victim) == before
    assert victim.read_bytes() == SECRET
    assert any("replaced" in p for p in problems), problems


def test_existing_directory_swapped_for_a_symlink_is_not_followed(tmp_path, monkeypatch):
    """make_dir gives an existing directory of the target the owner's rwx; the directory is
    replaced by a symlink to a directory outside right after restore looked at it."""
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    os.chmod(outside, 0o500)
    before = os.stat(outside).st_mode
    target = Target(tmp_path / "target")
    try:
        os.mkdir(b"d", 0o500, dir_fd=target.fd)
        swapped = []
        real_stat, real_fstat = os.stat, os.fstat

        def swap_once() -> None:
            if not swapped:
                swapped.append(True)
                _swap_for_symlink(target.fd, b"d", outside)

        def hooked_stat(*args, **kwargs):  # type: ignore[no-untyped-def]
            st = real_stat(*args, **kwargs)
            swap_once()
            return st

        def hooked_fstat(fd):  # type: ignore[no-untyped-def]
            st = real_fstat(fd)
            swap_once()
            return st

        monkeypatch.setattr(os, "stat", hooked_stat)
        monkeypatch.setattr(os, "fstat", hooked_fstat)
        target.make_dir(target.fd, b"d")
        monkeypatch.undo()
        assert swapped
    finally:
        target.close()
    assert os.stat(outside).st_mode == before


def test_restore_with_a_fifo_swapped_mid_restore_leaves_the_outside_alone(
    tmp_path, monkeypatch, run_cli
):
    """The whole restore, with the FIFO replaced the moment it is created."""
    victim = _victim(tmp_path)
    before = _state(victim)
    repo_dir = create_repo(tmp_path / "repo")
    crafter = Crafter(open_repo(repo_dir))
    try:
        fifo = Node(name=b"pipe", type=FIFO, mode=0o666, mtime=crafter.now, uid=4242)
        snap_id = crafter.snapshot([crafter.file(b"ok.txt", b"fine\n"), fifo])
    finally:
        crafter.close()
    real_mkfifo = os.mkfifo

    def racing_mkfifo(path, mode=0o666, *, dir_fd=None):  # type: ignore[no-untyped-def]
        real_mkfifo(path, mode, dir_fd=dir_fd)
        _swap_for_symlink(dir_fd, os.fsencode(path), victim)

    monkeypatch.setattr(os, "mkfifo", racing_mkfifo)
    target = tmp_path / "target"
    res = run_cli("restore", "--repo", repo_dir, snap_id, "--target", target)
    monkeypatch.undo()
    assert _state(victim) == before
    assert (target / "ok.txt").read_bytes() == b"fine\n"
    assert res.code != 0 and "replaced" in res.err, (res.code, res.err)
