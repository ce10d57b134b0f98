"""Faults: wrong passwords, damaged repositories, unreadable files, interrupted backups, full disks.

Each test drives the real CLI (in-process, or as a separate process where signals, users or a
crash are involved) against a real local repository, damages or interrupts it the way the world
does, and checks that cairn fails loudly, names what is wrong, never writes wrong bytes, and
leaves the repository usable.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cairn.app.context import StackHooks, stack_hooks
from cairn.core.errors import StorageError
from cairn.model.node import FILE, Node
from cairn.ops.backup.snapshot_writer import BackupRequest, run_backup
from cairn.ops.progress import NullProgress
from cairn.ops.restore import Planner, RestoreOptions, Tally, requests, restore_entries
from cairn.ops.restore.execute import Executor
from cairn.ops.restore.schedule import CACHE_BYTES, Scheduler, split
from cairn.ops.restore.source import BlobSource, Slot
from cairn.ops.snapshots import load_snapshots
from cairn.repo import layout
from cairn.repo.journal import PackJournal
from cairn.repo.repository import Repository
from cairn.storage.base import Buffer, Storage, StorageWrapper
from cairn.storage.faulty import FaultyStorage
from cairn.storage.local import LocalStorage
from cairn.storage.metered import MeteredStorage
from tests.conftest import NOBODY, interruptible
from tests.craft import (
    PASSWORD,
    Crafter,
    blobs_in_pack,
    create_repo,
    files_below,
    flip_bit,
    locate,
    only_snapshot,
    open_repo,
    regular_files,
    repo_listing,
)
from tests.verify import restored_diff

CAIRN = [sys.executable, "-m", "cairn"]
MiB = 1 << 20


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{err}"
    return lines[0]


def _packs(repo: Path) -> dict[str, int]:
    """Finished packs (not the temporary files of a write in progress) and their sizes."""
    out = {}
    data = repo / "data"
    if not data.is_dir():
        return out
    for sub in data.iterdir():
        for f in sub.iterdir():
            if not f.name.startswith(".tmp-"):
                with contextlib.suppress(FileNotFoundError):
                    out[f"data/{sub.name}/{f.name}"] = f.stat().st_size
    return out


# =============================================================================== 1. password
@pytest.mark.parametrize("source", ["env", "file"])
def test_wrong_password_fails_cleanly_and_changes_nothing(
    source, tmp_path, repo_path, run_cli, monkeypatch
):
    src = tmp_path / "src"
    _write_tree(src, {"a.txt": b"hello", "d/b.bin": _rand(300_000, 1)})
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    (src / "new.txt").write_bytes(b"would be backed up")

    if source == "env":
        monkeypatch.setenv("CAIRN_PASSWORD", "not the password")
        pw_args: list[str | Path] = []
    else:
        monkeypatch.delenv("CAIRN_PASSWORD")
        pw_file = tmp_path / "pw"
        pw_file.write_text("not the password\n")
        pw_args = ["--password-file", pw_file]

    before = repo_listing(repo_path)
    target = tmp_path / "out"
    commands = {
        "snapshots": ["snapshots"],
        "backup": ["backup", src],
        "restore": ["restore", "latest", "--target", target],
        "ls": ["ls", "latest"],
    }
    for name, args in commands.items():
        res = run_cli(args[0], "--repo", repo_path, *pw_args, *args[1:])
        assert res.code == 1, (name, res)
        line = _one_line(res.err)
        assert "password" in line.lower(), (name, line)
        assert res.out == "", (name, res.out)
        assert repo_listing(repo_path) == before, f"{name} changed the repository"
    assert not target.exists(), "restore with a wrong password created its target"


# =============================================================================== 2. tamper
SOURCE = {
    "small.txt": b"small and fine\n",
    "big.bin": _rand(3 * MiB, 2),
    "sub/one.bin": _rand(3 * MiB // 2, 3),
    "sub/two.txt": b"two\n" * 100,
    "sub/deeper/three.bin": _rand(600_000, 4),
    "z/last.bin": _rand(MiB, 5),
}


@dataclass
class Damage:
    name: str  # the damaged object, as the store names it
    damaged_files: set[str]  # files that cannot be restored correctly
    fails: list[str] = field(default_factory=list)  # commands besides restore that must fail


def _files_using(repo: Repository, snap, src: Path, blob_ids: set[bytes]) -> set[str]:  # type: ignore[no-untyped-def]
    return {
        rel
        for rel, node in files_below(repo, snap, src).items()
        if node.type == "file" and blob_ids & set(node.content)
    }


def _damage_data_blob(repo_dir: Path, repo: Repository, snap, src: Path) -> Damage:  # type: ignore[no-untyped-def]
    node = files_below(repo, snap, src)["big.bin"]
    place = locate(repo, node.content[1])
    flip_bit(repo_dir / place.pack_name, place.offset + place.length // 2, bit=3)
    return Damage(place.pack_name, {"big.bin"})


def _damage_batched_blob(repo_dir: Path, repo: Repository, snap, src: Path) -> Damage:  # type: ignore[no-untyped-def]
    """A small file restored with its neighbours, whose blobs are read in one request."""
    node = files_below(repo, snap, src)["sub/two.txt"]
    place = locate(repo, node.content[0])
    flip_bit(repo_dir / place.pack_name, place.offset + place.length // 2, bit=2)
    return Damage(place.pack_name, {"sub/two.txt"})


def _damage_tree_blob(repo_dir: Path, repo: Repository, snap, src: Path) -> Damage:  # type: ignore[no-untyped-def]
    node = files_below(repo, snap, src)["sub"]
    assert node.subtree is not None
    place = locate(repo, node.subtree)
    flip_bit(repo_dir / place.pack_name, place.offset + place.length // 2)
    return Damage(place.pack_name, {r for r in SOURCE if r.startswith("sub/")}, fails=["ls"])


def _damage_index(repo_dir: Path, repo: Repository, snap, src: Path) -> Damage:  # type: ignore[no-untyped-def]
    names = [n for n, _ in repo.storage.list(layout.INDEX)]
    assert len(names) == 1
    path = repo_dir / names[0]
    flip_bit(path, path.stat().st_size // 2)
    return Damage(names[0], set(SOURCE), fails=["ls"])


def _damage_snapshot(repo_dir: Path, repo: Repository, snap, src: Path) -> Damage:  # type: ignore[no-untyped-def]
    name = layout.snapshot_name(snap.id)
    path = repo_dir / name
    flip_bit(path, path.stat().st_size - 20, bit=7)
    # `snapshots` lists the others, naming this one in a warning (tests/test_damaged_snapshot.py)
    return Damage(name, set(SOURCE), fails=["ls"])


def _damage_config(repo_dir: Path, repo: Repository, snap, src: Path) -> Damage:  # type: ignore[no-untyped-def]
    path = repo_dir / "config"
    flip_bit(path, path.stat().st_size // 2, bit=1)
    return Damage("config", set(SOURCE), fails=["ls", "snapshots"])


def _truncate_pack(repo_dir: Path, repo: Repository, snap, src: Path) -> Damage:  # type: ignore[no-untyped-def]
    node = files_below(repo, snap, src)["big.bin"]
    place = locate(repo, node.content[0])
    cut = place.offset + place.length // 2
    os.truncate(repo_dir / place.pack_name, cut)
    lost = {b for b, p in blobs_in_pack(repo, place.pack_id).items() if p.offset + p.length > cut}
    return Damage(place.pack_name, _files_using(repo, snap, src, lost))


def _delete_pack(repo_dir: Path, repo: Repository, snap, src: Path) -> Damage:  # type: ignore[no-untyped-def]
    node = files_below(repo, snap, src)["sub/one.bin"]
    place = locate(repo, node.content[-1])
    (repo_dir / place.pack_name).unlink()
    lost = set(blobs_in_pack(repo, place.pack_id))
    return Damage(place.pack_name, _files_using(repo, snap, src, lost))


DAMAGES: dict[str, Callable[..., Damage]] = {
    "data-blob-bit": _damage_data_blob,
    "batched-blob-bit": _damage_batched_blob,
    "tree-blob-bit": _damage_tree_blob,
    "index-bit": _damage_index,
    "snapshot-bit": _damage_snapshot,
    "config-bit": _damage_config,
    "data-pack-truncated": _truncate_pack,
    "data-pack-deleted": _delete_pack,
}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_damage_is_detected_and_named(case, tmp_path, run_cli):
    repo_dir = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    _write_tree(src, SOURCE)
    res = run_cli("backup", "--repo", repo_dir, src)
    assert res.code == 0, res.err
    repo = open_repo(repo_dir)
    snap = only_snapshot(repo)
    assert len(_packs(repo_dir)) >= 4  # several data packs and a tree pack
    damage = DAMAGES[case](repo_dir, repo, snap, src)
    assert damage.damaged_files, "the damage must hit at least one file"

    target = tmp_path / "out"
    res = run_cli("restore", "--repo", repo_dir, f"{snap.id[:8]}:{src}", "--target", target)
    assert res.code != 0, f"restore of a damaged repository succeeded:\n{res.out}"
    assert damage.name in res.err, f"stderr does not name {damage.name}:\n{res.err}"

    restored = regular_files(target) if target.exists() else {}
    wrong = sorted(rel for rel, data in restored.items() if SOURCE.get(rel) != data)
    assert wrong == [], f"files restored with wrong bytes: {wrong}"
    assert not set(restored) & damage.damaged_files
    # Files the damage does not touch are still restored (a restore goes on past bad files).
    if case not in ("index-bit", "snapshot-bit", "config-bit"):
        assert set(restored) == set(SOURCE) - damage.damaged_files

    for cmd in damage.fails:
        args = ["ls", "--repo", repo_dir, "latest"] if cmd == "ls" else [cmd, "--repo", repo_dir]
        res = run_cli(*args)
        assert res.code != 0, f"{cmd} succeeded on a damaged repository"
        assert damage.name in res.err, f"{cmd}: stderr does not name {damage.name}:\n{res.err}"


# =============================================================================== 3. unreadable


@dataclass
class Result:
    code: int
    out: str
    err: str


def _as_unprivileged(args: list[str | os.PathLike[str]], env: dict[str, str]) -> Result:
    """Runs cairn as 'nobody' when we are root (root reads mode-000 files), else as ourselves."""
    cmd = [*CAIRN, *map(os.fspath, args)]
    kwargs: dict[str, object] = {}
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv:
            cmd = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
        else:
            kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    proc = subprocess.run(
        cmd, capture_output=True, env={**os.environ, **env}, check=False, cwd="/", **kwargs
    )
    return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode())


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), uid, gid, follow_symlinks=False)


def test_unreadable_entries_give_exit_3_and_a_partial_snapshot(
    unprivileged_base, tmp_path, run_cli
):
    base = unprivileged_base
    repo_dir = create_repo(base / "repo")
    src = base / "src"
    readable = {
        "a.txt": b"readable\n",
        "sub/b.bin": _rand(400_000, 6),
        "sub/deeper/c.txt": b"deep\n",
    }
    _write_tree(src, readable)
    (src / "secret.txt").write_bytes(b"nobody may read this\n")
    (src / "locked").mkdir()
    (src / "locked" / "hidden.txt").write_bytes(b"inside an unreadable directory\n")
    cache = base / "cache"
    cache.mkdir()
    uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    gid = NOBODY if os.geteuid() == 0 else os.getegid()
    for p in (repo_dir, src, cache):
        _chown_tree(p, uid, gid)
    # Unreadable, and (as root) owned by root so 'nobody' cannot just chmod them back.
    for p in (src / "secret.txt", src / "locked" / "hidden.txt", src / "locked"):
        os.chown(p, 0 if os.geteuid() == 0 else uid, 0 if os.geteuid() == 0 else gid)
    os.chmod(src / "secret.txt", 0)
    os.chmod(src / "locked", 0)
    try:
        res = _as_unprivileged(
            ["backup", "--repo", repo_dir, src], {"CAIRN_CACHE_DIR": os.fspath(cache)}
        )
    finally:
        os.chmod(src / "locked", 0o755)  # so the tree can be inspected and removed
        os.chmod(src / "secret.txt", 0o644)
    assert res.code == 3, f"exit {res.code}\n{res.out}\n{res.err}"
    warnings = [line for line in res.err.splitlines() if line.startswith("warning:")]
    assert any(f"{src}/secret.txt" in w for w in warnings), res.err
    assert any(f"{src}/locked" in w for w in warnings), res.err

    res = run_cli("ls", "--repo", repo_dir, "latest")
    assert res.code == 0, res.err
    prefix = f"{src}/"
    listed = {line[len(prefix) :] for line in res.out.splitlines() if line.startswith(prefix)}
    expected = {"a.txt", "sub", "sub/b.bin", "sub/deeper", "sub/deeper/c.txt"}
    assert expected <= listed, sorted(listed)
    assert listed - expected <= {"locked"}, sorted(listed)  # the directory, without contents

    out = tmp_path / "out"
    res = run_cli("restore", "--repo", repo_dir, f"latest:{src}", "--target", out)
    assert res.code == 0, res.err
    assert regular_files(out) == readable


# =============================================================================== 4. interrupted
BIG_FILES = 30
BIG_FILE_SIZE = 4 * MiB
BIG_TOTAL = BIG_FILES * BIG_FILE_SIZE  # 120 MiB


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("big") / "src"
    src.mkdir()
    for i in range(BIG_FILES):
        (src / f"f{i:03}.bin").write_bytes(os.urandom(BIG_FILE_SIZE))
    return src


def _start(*args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CAIRN, *map(os.fspath, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
        preexec_fn=interruptible,
    )


def _wait_for_packs(proc: subprocess.Popen[bytes], repo: Path, min_bytes: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(_packs(repo).values()) >= min_bytes:
            return
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"backup ended (exit {proc.returncode}) before it was interrupted: {err!r}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("backup wrote no packs within 60 s")


def test_killed_backup_leaves_usable_repo_and_packs_are_reused(
    tmp_path, big_source, run_cli, cairn_proc
):
    repo_dir = create_repo(tmp_path / "repo")
    early = tmp_path / "early"
    _write_tree(early, {"e.txt": b"an earlier snapshot\n"})
    assert run_cli("backup", "--repo", repo_dir, early).code == 0

    proc = _start("backup", "--repo", repo_dir, big_source)
    try:
        _wait_for_packs(proc, repo_dir, BIG_TOTAL * 2 // 5)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    uploaded = sum(_packs(repo_dir).values())
    assert uploaded >= BIG_TOTAL * 2 // 5

    res = cairn_proc("snapshots", "--repo", repo_dir, "--json")
    assert res.code == 0, res.err
    assert [s["paths"] for s in json.loads(res.out)] == [[str(early)]]

    res = cairn_proc("backup", "--repo", repo_dir, big_source, "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)["summary"]
    bytes_up = summary["requests"]["bytes_up"]
    # What the killed backup uploaded (less at most the packs in flight) is not sent again.
    assert bytes_up < BIG_TOTAL - uploaded // 2, (bytes_up, uploaded, BIG_TOTAL)
    assert bytes_up > 0

    out = tmp_path / "out"
    res = cairn_proc(
        "restore", "--repo", repo_dir, f"latest:{big_source}", "--target", out, "--verify"
    )
    assert res.code == 0, res.err
    assert restored_diff(big_source, out, repo_dir) == []


def test_interrupted_backup_exits_130_and_repo_stays_usable(
    tmp_path, big_source, run_cli, cairn_proc
):
    repo_dir = create_repo(tmp_path / "repo")
    proc = _start("backup", "--repo", repo_dir, big_source)
    try:
        _wait_for_packs(proc, repo_dir, 8 * MiB)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert b"Traceback" not in err, err
    # one line: what was kept, and that the next run goes on from it
    assert err.decode().splitlines()[-1] == (
        "cairn: error: interrupted: no snapshot was saved; the packs uploaded so far are kept, "
        "and the next backup from this machine reuses them instead of uploading them again"
    )
    uploaded = sum(_packs(repo_dir).values())

    res = run_cli("snapshots", "--repo", repo_dir, "--json")
    assert res.code == 0, res.err
    assert res.json() == []

    res = run_cli("backup", "--repo", repo_dir, big_source, "--json")
    assert res.code == 0, res.err
    bytes_up = res.json()["summary"]["requests"]["bytes_up"]
    assert bytes_up < BIG_TOTAL - uploaded // 2, (bytes_up, uploaded, BIG_TOTAL)  # as it said
    res = run_cli("ls", "--repo", repo_dir, "latest", f"{big_source}")
    assert res.code == 0, res.err
    assert len([ln for ln in res.out.splitlines() if ln.endswith(".bin")]) == BIG_FILES


# =============================================================================== 5. full disk
class QuotaStorage(StorageWrapper):
    """Fault injection around the real local backend: a write that would take the repository
    directory over ``limit`` bytes fails the way a full disk does (the backend contract: a
    StorageError with a one-line message)."""

    def __init__(self, inner: Storage, limit: list[int]) -> None:
        assert isinstance(inner, LocalStorage)
        super().__init__(inner)
        self.root = inner.root
        self.limit = limit  # shared and mutable, so a test can "free space"

    def write(self, name: str, data: Buffer, **kw: object) -> None:
        used = sum(_size(os.path.join(d, f)) for d, _, files in os.walk(self.root) for f in files)
        if used + memoryview(data).nbytes > self.limit[0]:
            raise StorageError(
                f"cannot write {name}: {os.strerror(errno.ENOSPC).lower()} (injected)"
            )
        self.inner.write(name, data, **kw)  # type: ignore[arg-type]


def _size(path: str) -> int:
    """A file's size; 0 for one gone since it was listed (another upload's temporary file,
    renamed into place meanwhile)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def _small_disk(path: Path, size: str) -> Iterator[bool]:
    """Mounts a tmpfs of ``size`` at ``path``; yields False (and mounts nothing) when this
    sandbox does not permit mounting."""
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        if subprocess.run(["umount", path], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", path], capture_output=True, check=False)


def test_full_disk_fails_cleanly_and_repo_survives(tmp_path, run_cli):
    small = tmp_path / "src-small"
    _write_tree(small, {"a.txt": b"fits\n", "b.bin": _rand(200_000, 7)})
    big = tmp_path / "src-big"
    _write_tree(big, {f"f{i}.bin": _rand(2 * MiB, 10 + i) for i in range(8)})  # 16 MiB

    disk = tmp_path / "disk"
    with _small_disk(disk, "8m") as mounted:
        if mounted:
            hooks = StackHooks()

            def make_room() -> None:
                subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
        else:  # no mounting here: the same scenario through a fault-injecting storage wrapper
            limit = [8 * MiB]
            hooks = StackHooks(wrappers=(lambda backend: QuotaStorage(backend, limit),))

            def make_room() -> None:
                limit[0] = 64 * MiB

        with stack_hooks(hooks):
            repo_dir = disk / "repo"
            repo_dir.mkdir()
            res = run_cli("init", "--repo", repo_dir, "--pack-size", "1M")
            assert res.code == 0, res.err
            res = run_cli("backup", "--repo", repo_dir, small)
            assert res.code == 0, res.err

            res = run_cli("backup", "--repo", repo_dir, big)
            assert res.code == 1, (res.code, res.out, res.err)
            line = _one_line(res.err)
            assert "no space left" in line.lower(), line
            assert not [
                f for _, _, files in os.walk(repo_dir) for f in files if f.startswith(".tmp-")
            ], "a failed write left a temporary file behind"

            res = run_cli("snapshots", "--repo", repo_dir, "--json")
            assert res.code == 0, res.err
            assert [s["paths"] for s in res.json()] == [[str(small)]]
            out = tmp_path / "out-small"
            res = run_cli("restore", "--repo", repo_dir, f"latest:{small}", "--target", out)
            assert res.code == 0, res.err
            assert restored_diff(small, out, repo_dir) == []

            make_room()
            res = run_cli("backup", "--repo", repo_dir, big)
            assert res.code == 0, res.err
            out = tmp_path / "out-big"
            res = run_cli(
                "restore", "--repo", repo_dir, f"latest:{big}", "--target", out, "--verify"
            )
            assert res.code == 0, res.err
            assert restored_diff(big, out, repo_dir) == []


def test_full_disk_through_the_api_keeps_the_write_order(tmp_path):
    """run_backup against a store that fills up: it raises, writes no snapshot, every index
    object lists only packs that exist, and the next run reuses the packs already stored."""
    repo_dir = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    files = {f"f{i}.bin": _rand(MiB, 30 + i) for i in range(12)}
    _write_tree(src, files)
    journal = PackJournal(tmp_path / "journal")
    limit = [5 * MiB]

    def backup() -> tuple[Repository, MeteredStorage, object]:
        meter = MeteredStorage(QuotaStorage(LocalStorage(repo_dir), limit))
        repo = Repository.open(meter, PASSWORD)
        repo.load_index()
        result = run_backup(
            repo, BackupRequest(paths=[os.fspath(src)]), NullProgress(), None, journal, meter
        )
        return repo, meter, result

    with pytest.raises(StorageError, match="no space left"):
        backup()
    stored = sum(_packs(repo_dir).values())
    assert stored > 2 * MiB  # some packs made it before the disk was full

    repo = open_repo(repo_dir)
    assert load_snapshots(repo) == []
    for pack in repo.index.packs:
        assert repo.storage.stat(layout.pack_name(pack.id.hex())) > 0

    limit[0] = 64 * MiB
    repo, meter, result = backup()
    snap = result.snapshot  # type: ignore[attr-defined]
    assert result.saved  # type: ignore[attr-defined]
    assert meter.usage.bytes_up < sum(map(len, files.values())) - stored // 2, (
        meter.usage.bytes_up,
        stored,
    )
    restored = {}
    top = files_below(repo, snap, src)
    for rel, node in top.items():
        restored[rel] = b"".join(repo.load_blob(b) for b in node.content)
    assert restored == files
    assert [s.id for s in load_snapshots(open_repo(repo_dir))] == [snap.id]


def test_a_directory_of_small_files_is_read_in_one_request_and_damage_stays_with_its_file(
    tmp_path, run_cli
):
    repo_dir = create_repo(tmp_path / "repo", pack_size=4 << 20)
    src = tmp_path / "src"
    files = {f"d/f{i:02d}.txt": f"file {i}\n".encode() * (50 + i) for i in range(30)}
    _write_tree(src, files)
    assert run_cli("backup", "--repo", repo_dir, src).code == 0
    repo = open_repo(repo_dir)
    snap = only_snapshot(repo)
    nodes = files_below(repo, snap, src)
    victim = "d/f07.txt"
    place = locate(repo, nodes[victim].content[0])
    flip_bit(repo_dir / place.pack_name, place.offset + place.length // 2, bit=5)

    summary, reads, _ = _restore_counting(repo_dir, src, tmp_path / "out")
    restored = regular_files(tmp_path / "out")
    assert summary.errors == 1 and summary.files == len(files) - 1
    assert set(restored) == {f"d/{n}" for n in (Path(k).name for k in files)} - {victim}
    assert all(restored[k] == files[k] for k in restored)
    # one read for all the directory's blobs, and one more for the damaged blob alone, so
    # its error is reported with its file
    assert len(reads) == 2, reads
    start, length = reads[0][1], reads[0][2]
    assert length is not None
    for name in files:
        p = locate(repo, nodes[name].content[0])
        assert start <= p.offset and p.offset + p.length <= start + length
    assert (reads[1][1], reads[1][2]) == (place.offset, place.length)


def _large_file(n_mib: int) -> bytes:
    """Random stretches (stored as they are) and text (compressed small, so several of its
    chunks lie back to back in one pack); no two chunks alike."""
    rng = random.Random(n_mib)
    out = bytearray()
    while len(out) < n_mib * MiB:
        if rng.random() < 0.5:
            out += rng.randbytes(rng.randrange(MiB // 2, 3 * MiB))
        else:
            start = rng.randrange(1 << 40)
            out += b"".join(
                b"line %d of a log\n" % i
                for i in range(start, start + rng.randrange(40_000, 200_000))
            )
    return bytes(out[: n_mib * MiB])


def _restore_counting(repo_dir: Path, src: Path, target: Path):  # type: ignore[no-untyped-def]
    """Restores the only snapshot's ``src`` from the repository in ``repo_dir``; the summary,
    the data reads it made (pack, offset, length) and the ones its schedule counted."""
    storage = FaultyStorage(LocalStorage(repo_dir))
    repo = Repository.open(storage, PASSWORD)
    repo.load_index()
    snap = only_snapshot(repo)
    tally = Tally(NullProgress())
    plan = list(Planner(repo, on_problem=tally.tree_problem).plan(snap, str(src)))
    expected = [
        (layout.pack_name(r.pack.id.hex()), r.offset, r.length)
        for r in requests(plan, repo.index.get)
    ]
    planned = len(storage.log)
    summary = restore_entries(repo, plan, str(target), RestoreOptions(), tally)
    reads = [
        (c.name, c.offset, c.length)
        for c in storage.log[planned:]
        if c.op in ("read", "read_into") and c.name.startswith(layout.DATA)
    ]
    return summary, reads, expected


def test_small_files_have_a_thread_of_their_own(tmp_path, run_cli, monkeypatch) -> None:
    """With ``small_file_workers=1`` batches of small files never run two at a time, and not on
    the threads writing the large file's parts."""
    repo_dir = create_repo(tmp_path / "repo", pack_size=8 << 20)
    src = tmp_path / "src"
    files = {"big.bin": _large_file(20)} | {
        f"d{i:02d}/f{j}.txt": f"{i} {j}\n".encode() * 50 for i in range(30) for j in range(4)
    }
    _write_tree(src, files)
    assert run_cli("backup", "--repo", repo_dir, src).code == 0
    repo = open_repo(repo_dir)
    lock = threading.Lock()
    running = [0, 0]  # batches running now, most at once
    threads: dict[str, set[str]] = {"files": set(), "parts": set()}
    restore_batch, write_part = Executor._restore_batch, Executor._write_part

    def spy_files(self, job):  # type: ignore[no-untyped-def]
        with lock:
            running[0] += 1
            running[1] = max(running)
            threads["files"].add(threading.current_thread().name)
        try:
            time.sleep(0.005)  # long enough for another batch to start, were it allowed to
            return restore_batch(self, job)
        finally:
            with lock:
                running[0] -= 1

    def spy_part(self, job, part):  # type: ignore[no-untyped-def]
        with lock:
            threads["parts"].add(threading.current_thread().name)
        return write_part(self, job, part)

    monkeypatch.setattr(Executor, "_restore_batch", spy_files)
    monkeypatch.setattr(Executor, "_write_part", spy_part)
    options = RestoreOptions(workers=2, small_file_workers=1)
    tally = Tally(NullProgress())
    plan = Planner(repo, on_problem=tally.tree_problem).plan(only_snapshot(repo), str(src))
    summary = restore_entries(repo, plan, str(tmp_path / "out"), options, tally)
    assert summary.errors == 0 and regular_files(tmp_path / "out") == files
    assert running[1] == 1
    assert len(threads["files"]) == 1 and threads["parts"]
    assert not threads["files"] & threads["parts"]


def test_a_large_file_is_written_in_parts_and_its_neighbouring_blobs_read_together(
    tmp_path, run_cli
):
    repo_dir = create_repo(tmp_path / "repo", pack_size=8 << 20)
    src = tmp_path / "src"
    files = {"big.bin": _large_file(30), "small/a.txt": b"a\n" * 100, "z.bin": _rand(MiB, 3)}
    _write_tree(src, files)
    assert run_cli("backup", "--repo", repo_dir, src).code == 0
    repo = open_repo(repo_dir)
    big = files_below(repo, only_snapshot(repo), src)["big.bin"]
    assert len(split(big, repo.index.get) or []) >= 3
    assert len(set(big.content)) == len(big.content)  # else the reads would depend on timing
    summary, reads, expected = _restore_counting(repo_dir, src, tmp_path / "out")
    assert summary.errors == 0 and summary.files == len(files)
    assert regular_files(tmp_path / "out") == files
    # each run of neighbouring blobs is one read, and the estimate counts exactly those
    assert sorted(reads) == sorted(expected)
    assert len(reads) < len(big.content) + 2


def test_blobs_the_cache_pushed_out_are_freed_once_taken(tmp_path):
    """The blobs read alone are kept for later duplicates; once the cache's model pushes one
    out and every job scheduled to take it has, its memory is freed: what stays is at most
    the cache's size, however many blobs went through."""
    repo_dir = create_repo(tmp_path / "repo")
    repo = open_repo(repo_dir)
    crafter = Crafter(repo)
    ids = [crafter.file(b"p%d" % i, _rand(600 << 10, 300 + i)).content[0] for i in range(30)]
    crafter.flush()
    repo = open_repo(repo_dir)
    slots: list[Slot] = []

    class Source(BlobSource):
        def new_slot(self) -> Slot:
            slots.append(super().new_slot())
            return slots[-1]

    source = Source(repo.reader)
    scheduler = Scheduler(repo.index.get, source)
    order = ids + ids[-5:]  # the last five again: taken from the cache
    fetches = scheduler.fetches(order)
    got = [bytes(b) for b in source.fetched(fetches)]
    assert [repo.key.blob_id(b) for b in got] == order
    assert len(slots) == len(ids)
    held = sum(len(s.data) for s in slots if s.data is not None)
    assert 0 < held <= CACHE_BYTES, held


def test_blobs_kept_in_the_cache_are_read_once_whatever_order_the_parts_run_in(tmp_path):
    """A large file of a few blobs used again and again, each in a pack of its own (so each is
    read alone and kept in the blob cache): its parts run on several threads at once, a part
    often needing a blob another part is reading. Each blob is read once, as the schedule
    counted, every time."""
    repo_dir = create_repo(tmp_path / "repo")
    repo = open_repo(repo_dir)
    crafter = Crafter(repo)
    pieces = [_rand(600 << 10, 100 + i) for i in range(10)]
    ids = [crafter.file(b"p%d" % i, p).content[0] for i, p in enumerate(pieces)]
    order = [random.Random(7).randrange(10) for _ in range(40)]
    data = b"".join(pieces[i] for i in order)
    big = Node(b"big.bin", FILE, mode=0o644, size=len(data), content=[ids[i] for i in order])
    crafter.snapshot([big])
    repo = open_repo(repo_dir)
    snap = only_snapshot(repo)
    assert len(split(big, repo.index.get) or []) >= 3
    expected = [
        (layout.pack_name(r.pack.id.hex()), r.offset, r.length)
        for r in requests(Planner(repo).plan(snap, "/"), repo.index.get)
    ]
    assert len(expected) == len(set(order))
    for run in range(3):
        storage = FaultyStorage(LocalStorage(repo_dir))
        storage.before("read_into", layout.DATA, lambda: time.sleep(0.002), times=None)
        reader = Repository.open(storage, PASSWORD)  # parts overlap all the more
        reader.load_index()
        tally = Tally(NullProgress())
        out = tmp_path / f"out{run}"
        options = RestoreOptions(workers=4)
        plan = Planner(repo).plan(snap, "/")
        summary = restore_entries(reader, plan, str(out), options, tally)
        reads = [
            (c.name, c.offset, c.length)
            for c in storage.log
            if c.op in ("read", "read_into") and c.name.startswith(layout.DATA)
        ]
        assert summary.errors == 0 and (out / "big.bin").read_bytes() == data
        assert sorted(reads) == sorted(expected)


def test_damage_in_one_part_of_a_large_file_removes_that_file_only(tmp_path, run_cli):
    repo_dir = create_repo(tmp_path / "repo", pack_size=8 << 20)
    src = tmp_path / "src"
    files = {"big.bin": _large_file(30), "other.bin": _rand(2 * MiB, 4), "t.txt": b"t\n" * 50}
    _write_tree(src, files)
    assert run_cli("backup", "--repo", repo_dir, src).code == 0
    repo = open_repo(repo_dir)
    big = files_below(repo, only_snapshot(repo), src)["big.bin"]
    place = locate(repo, big.content[len(big.content) // 2])
    flip_bit(repo_dir / place.pack_name, place.offset + place.length // 2, bit=2)
    summary, reads, _ = _restore_counting(repo_dir, src, tmp_path / "out")
    assert summary.errors == 1 and summary.files == len(files) - 1
    restored = regular_files(tmp_path / "out")
    assert set(restored) == set(files) - {"big.bin"}
    assert all(restored[k] == files[k] for k in restored)
    # the run holding the damaged blob is read again blob by blob, so the error names it
    assert (place.pack_name, place.offset, place.length) in reads
    res = run_cli("restore", "--repo", repo_dir, f"latest:{src}", "--target", tmp_path / "cli")
    assert res.code != 0 and "big.bin" in res.err
    assert not (tmp_path / "cli" / "big.bin").exists()
