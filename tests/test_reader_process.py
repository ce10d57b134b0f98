"""Small files read in a process of the backup's own (ops/backup/reader_process.py): the
snapshot is the one the backup would make reading them itself, the child's packs are stored,
journaled and indexed by the backup, and a child that fails or vanishes fails the backup with
a one-line error, never a snapshot that lacks data."""

from __future__ import annotations

import errno
import json
import mmap
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cairn.app.budget import reader_process_fits, write_budget
from cairn.core.memory import lazy_buffer
from cairn.ops.backup import archiver
from cairn.ops.backup.file_saver import FileResult
from cairn.ops.backup.reader_process import LONG_PATH, ReaderFailed, ReaderProcess
from cairn.ops.snapshots import load_snapshots
from cairn.ops.treewalk import load_tree
from cairn.repo import layout
from tests.conftest import CAIRN, interruptible
from tests.craft import create_repo, open_repo


def _tree(top: Path) -> Path:
    src = top / "src"
    for d in range(6):
        sub = src / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(150):
            (sub / f"f{i}").write_bytes(b"file %d in %d\n" % (i, d) * (i % 7 + 1))
        (sub / "same").write_bytes(b"the same in every directory\n" * 50)
    (src / "large").write_bytes(os.urandom(3 << 20))
    (src / "empty").write_bytes(b"")
    os.link(src / "d0" / "f1", src / "d1" / "link-to-f1")
    os.setxattr(src / "d2" / "f2", b"user.note", b"kept")
    # files the reading process reads (the walk reads the first ones itself): their extended
    # attributes are read there, from the open file
    os.setxattr(src / "d5" / "f3", b"user.b", b"second")
    os.setxattr(src / "d5" / "f3", b"user.a", b"")
    os.setxattr(src / "d4" / "f100", b"user.note", os.urandom(300))
    # a file whose path is longer than the reading process opens in one call
    deep = src / "deep"
    path = deep
    while len(os.fsencode(path)) < LONG_PATH:
        path = path / ("x" * 200)
    os.makedirs(path)
    (path / "far").write_bytes(b"far away\n")
    return src


def _src_trees(repo, src: Path) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The tree id of ``src`` in each snapshot, oldest first."""
    out = []
    for snap in load_snapshots(repo):
        tree = snap.tree
        for part in os.fsencode(src).split(b"/")[1:]:
            (node,) = [n for n in load_tree(repo, tree) if n.name == part]
            tree = node.subtree
        out.append(tree)
    return out


def _first_backup(tmp_path: Path, run_cli) -> tuple[Path, Path, dict]:  # type: ignore[no-untyped-def, type-arg]
    """``_tree`` backed up into a new repository of small packs: the tree, the repository and
    the backup's summary."""
    src = _tree(tmp_path)
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo, "--pack-size", "1M").code == 0
    res = run_cli("backup", "--repo", repo, src, "--json")
    assert res.code == 0, res.err
    return src, repo, res.json()["summary"]


def test_the_snapshot_is_the_one_the_backup_makes_reading_itself(tmp_path, run_cli):
    src, repo, summary = _first_backup(tmp_path, run_cli)
    assert summary["files_new"] == 6 * 151 + 3  # a second link is not a new file
    # read again by the backup itself (no reading process): every tree is the same, so the
    # backed-up directory's tree is the first snapshot's
    res = run_cli("backup", "--repo", repo, src, "--force", "--read-concurrency", "1", "--json")
    assert res.code == 0, res.err
    assert res.json()["summary"]["data_blobs_added"] == 0
    # (the trees of the directories above it hold their times: another process may write to
    # /tmp between the two backups)
    first, second = _src_trees(open_repo(repo), src)
    assert first == second
    res = run_cli("check", "--repo", repo, "--read-data")
    assert res.code == 0, res.err
    out = tmp_path / "out"
    assert run_cli("restore", "--repo", repo, "latest", "--target", out).code == 0
    restored = out / src.relative_to("/")
    assert (restored / "d2" / "f2").read_bytes() == (src / "d2" / "f2").read_bytes()
    for f in ("d2/f2", "d5/f3", "d4/f100"):
        attrs = {a: os.getxattr(src / f, a) for a in os.listxattr(src / f)}
        assert attrs and {a: os.getxattr(restored / f, a) for a in attrs} == attrs
    assert os.stat(restored / "d1" / "link-to-f1").st_ino == os.stat(restored / "d0" / "f1").st_ino
    for path in src.rglob("*"):
        if path.is_file():
            assert _read(restored / path.relative_to(src)) == _read(path)


def _read(path: Path) -> bytes:
    """A file's content, opened a directory at a time (its path may be past PATH_MAX)."""
    *dirs, name = path.parts
    fd = os.open("/", os.O_RDONLY)
    try:
        for d in dirs[1:]:
            nxt = os.open(d, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        f = os.open(name, os.O_RDONLY, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(f, "rb") as stream:
        return stream.read()


def test_each_blob_is_stored_once_and_the_packs_are_indexed(tmp_path, run_cli):
    _, repo, summary = _first_backup(tmp_path, run_cli)
    r = open_repo(repo)
    assert _stored_blobs(r) == len(set(r.index.blob_ids()))  # "same" six times: stored once
    # every stored pack is listed in an index object, and the journal is empty again
    packs = {name.rsplit("/", 1)[1] for name, _ in r.storage.list("data/")}
    assert packs == {p.id.hex() for p in r.index.packs}
    assert summary["packs_written"] == len(packs)
    assert not any((tmp_path / "cache").rglob("pending-packs"))


def _stored_blobs(repo, blob_type: int | None = None) -> int:  # type: ignore[no-untyped-def]
    """Blobs the packs hold (of a type), by the index objects (the in-memory index keeps one
    of each)."""
    names = [name for name, _ in repo.storage.list("index/")]
    packs = [p for name in names for p in repo.read_index_columns(name)]
    return sum(len(p) for p in packs if blob_type in (None, p.info.blob_type))


def test_a_blob_in_the_backups_open_pack_is_not_stored_again_by_the_reading_process(
    tmp_path, run_cli
):
    """The reading process starts once the walk has read a few batches itself: a blob of
    those, in the backup's pack that is not stored yet, counts as known to it."""
    src = tmp_path / "src"
    src.mkdir()
    last_here = archiver.READER_AFTER * archiver.BATCH_FILES - 1
    for i in range(last_here + 100):
        (src / f"f{i:04d}").write_bytes(b"file %d\n" % i)
    (src / f"f{last_here:04d}").write_bytes(b"the same twice\n")
    (src / f"f{last_here + 50:04d}").write_bytes(b"the same twice\n")  # the child reads it
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo).code == 0
    res = run_cli("backup", "--repo", repo, src, "--json", "--no-scan")
    assert res.code == 0, res.err
    assert res.json()["summary"]["data_blobs_added"] == last_here + 99
    r = open_repo(repo)
    assert _stored_blobs(r, layout.DATA_BLOB) == last_here + 99


def test_a_dry_run_counts_what_a_backup_stores(tmp_path, run_cli):
    src = _tree(tmp_path)
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo, "--pack-size", "1M").code == 0
    dry = run_cli("backup", "--repo", repo, src, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert not list((repo / "data").rglob("*")) or not any(
        p.is_file() for p in (repo / "data").rglob("*")
    )
    real = run_cli("backup", "--repo", repo, src, "--json")
    assert real.code == 0, real.err
    for key in ("files_new", "data_blobs_added", "bytes_added", "packs_written"):
        assert dry.json()["summary"][key] == real.json()["summary"][key], key


@contextmanager
def _reading(tmp_path: Path) -> Iterator[ReaderProcess]:
    """A reading process of a writer of a new repository (ended, whatever the test did)."""
    repo = open_repo(create_repo(tmp_path / "repo"))
    with repo.writer() as writer:
        reader = ReaderProcess(writer)
        try:
            yield reader
        finally:
            reader.abort()


def test_a_file_replaced_since_the_walk_is_not_read(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"seen by the walk")
    seen = os.lstat(f)
    f.rename(tmp_path / "kept")  # (so that the new file cannot take its inode number)
    f.write_bytes(b"another file, with another inode, at the same path")
    with _reading(tmp_path) as reader:
        (result,) = reader.submit([(os.fsencode(f), seen, None)]).result(timeout=60)
        assert isinstance(result, OSError) and result.errno == errno.ESTALE
        g = tmp_path / "g"
        g.write_bytes(b"read as it is")
        (result,) = reader.submit([(os.fsencode(g), os.lstat(g), None)]).result(timeout=60)
        assert isinstance(result, FileResult) and result.size == len(b"read as it is")
        reader.finish()


def test_a_reading_process_that_vanishes_fails_the_backup(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    with _reading(tmp_path) as reader:
        os.kill(reader.pid, signal.SIGKILL)
        with pytest.raises(ReaderFailed, match="reading process"):
            for _ in range(1000):  # until the pipe tells (the first sends may still fit)
                reader.submit([(os.fsencode(f), os.lstat(f), None)]).result(timeout=60)
        with pytest.raises(ReaderFailed):
            reader.finish()


def test_an_interrupted_backup_leaves_no_reading_process(tmp_path):
    src = tmp_path / "src"
    for d in range(60):  # (enough that the backup is still running when interrupted)
        (src / f"d{d}").mkdir(parents=True)
        for i in range(500):
            (src / f"d{d}" / f"f{i}").write_bytes(b"%d/%d" % (d, i))
    repo = create_repo(tmp_path / "repo")
    env = {**os.environ, "CAIRN_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [*CAIRN, "backup", "--repo", str(repo), str(src), "--no-scan"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=interruptible,
    )
    children: set[int] = set()
    deadline = time.monotonic() + 60
    while not children and time.monotonic() < deadline and proc.poll() is None:
        children = _children(proc.pid)
        time.sleep(0.02)
    assert children, "the backup started no reading process"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z", err
    res = subprocess.run(
        [*CAIRN, "check", "--repo", str(repo)], env=env, capture_output=True, check=False
    )
    assert res.returncode == 0, res.stderr


def _children(pid: int) -> set[int]:
    """The forked children of ``pid`` that run the same program (not the scanner, which runs
    ``python -m cairn.ops.backup.scan_child``)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"scan_child" not in cmdline:
                out.add(int(child))
    return out


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_a_buffer_is_not_shared_with_a_forked_process():
    """A thread's scratch buffer, made before a reading process is forked, must not be that
    process's buffer too: both would frame blobs into the same pages (a shared mapping)."""
    buf = lazy_buffer(mmap.PAGESIZE)
    buf[:5] = b"mine."
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        buf[:5] = b"child"
        os._exit(0)
    os.waitpid(pid, 0)
    assert bytes(buf[:5]) == b"mine."


def test_the_reading_process_is_used_only_where_its_packs_fit():
    mib = 1 << 20
    fits = write_budget(256 * mib, 8 * mib, 2, readers=2)
    assert reader_process_fits(fits, 8 * mib, 2)
    tight = write_budget(64 * mib, 8 * mib, 2, readers=2)
    assert not reader_process_fits(tight, 8 * mib, 2)
    spooled = write_budget(256 * mib, 8 * mib, 2, readers=2, spool=True)
    assert reader_process_fits(spooled, 8 * mib, 2)  # packs in files: a staging buffer each
    assert not reader_process_fits(write_budget(56 * mib, 8 * mib, 2, 2), 8 * mib, 2)


def test_the_cli_backs_up_with_the_reading_process(tmp_path, cairn_proc):
    """As a user runs it: a process of its own, whose reading process is really used (the
    child's CPU time is reported to the parent when it is waited for)."""
    src = _tree(tmp_path)
    repo = create_repo(tmp_path / "repo")
    code = (
        "import os, resource, sys\n"
        "from cairn.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        "c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(c.ru_utime + c.ru_stime, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "backup", "--repo", str(repo), str(src), "--no-scan"],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    child_cpu = float(proc.stderr.decode().strip().splitlines()[-1])
    assert child_cpu > 0
    res = cairn_proc("check", "--repo", repo, "--read-data")
    assert res.code == 0, res.err
    assert json.loads(cairn_proc("snapshots", "--repo", repo, "--json").out)


def test_on_s3_the_packs_built_in_files_are_handed_over(tmp_path, run_cli, s3_url, monkeypatch):
    """On an object store packs are built in temporary files: the reading process hands each
    file's descriptor to the backup, which uploads the pack from it."""
    handed: list[int] = []
    receive = socket.recv_fds

    def counted(*args):  # type: ignore[no-untyped-def]
        out = receive(*args)
        handed.extend(out[1])
        return out

    monkeypatch.setattr(socket, "recv_fds", counted)
    src = _tree(tmp_path)
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    before = _deleted_files()
    res = run_cli("backup", "--repo", s3_url, src, "--json", "--no-scan")
    assert res.code == 0, res.err
    assert res.json()["summary"]["packs_written"] > 2
    assert handed  # the small files' data pack came as a file
    assert _deleted_files() <= before  # every pack file the backup was handed is closed
    res = run_cli("check", "--repo", s3_url, "--read-data")
    assert res.code == 0, res.err
    out = tmp_path / "out"
    assert run_cli("restore", "--repo", s3_url, "latest", "--target", out).code == 0
    restored = out / src.relative_to("/")
    for path in src.rglob("*"):
        if path.is_file():
            assert _read(restored / path.relative_to(src)) == _read(path)


def _deleted_files() -> set[str]:
    """This process's descriptors of files deleted (or never named: the pack files)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "(deleted)" in target:
            out.add(f"{fd} {target}")
    return out
