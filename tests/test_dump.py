"""cairn dump: one file as its bytes, a directory as a tar stream with all its metadata."""

from __future__ import annotations

import io
import os
import pwd
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from cairn.ops.dump import Dumper, pax_time
from cairn.ops.progress import NullProgress
from cairn.ops.restore.schedule import Scheduler
from cairn.ops.snapshots import load_snapshots
from cairn.repo import layout
from cairn.repo.repository import Repository
from cairn.storage.faulty import FaultyStorage
from cairn.storage.local import LocalStorage
from tests import treecmp, treegen
from tests.craft import (
    PASSWORD,
    create_repo,
    files_below,
    flip_bit,
    locate,
    only_snapshot,
    open_repo,
)

CAIRN = [sys.executable, "-m", "cairn"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return create_repo(tmp_path / "repo")


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def dump_bytes(repo: Path, *args: str | os.PathLike[str]) -> bytes:
    proc = subprocess.run(
        [*CAIRN, "dump", "-r", str(repo), *map(os.fspath, args)], capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


@pytest.fixture
def sink(tmp_path: Path, repo: Path, run_cli) -> Path:  # type: ignore[no-untyped-def]
    """The kitchen-sink tree (every kind of entry and attribute), backed up."""
    src = tmp_path / "src"
    src.mkdir()
    treegen.build(src, treegen.kitchen_sink())
    ok(run_cli("backup", "-r", repo, src))
    return src


def test_dump_a_file_to_stdout_with_or_without_slash(tmp_path: Path, repo: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "data"
    src.mkdir()
    content = os.urandom(5 << 20)  # several chunks
    (src / "big.bin").write_bytes(content)
    ok(run_cli("backup", "-r", repo, src))
    rel = str(src / "big.bin").lstrip("/")
    assert dump_bytes(repo, "latest", rel) == content
    assert dump_bytes(repo, "latest", "/" + rel) == content


def test_dump_directory_as_tar_that_gnu_tar_restores_exactly(
    tmp_path: Path, repo: Path, sink: Path
) -> None:
    target = tmp_path / "untar"
    target.mkdir()
    tar = subprocess.run(
        [*CAIRN, "dump", "-r", str(repo), "latest", str(sink)],
        stdout=subprocess.PIPE,
        check=True,
    )
    subprocess.run(
        ["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", str(target)],
        input=tar.stdout,
        check=True,
        capture_output=True,
    )
    restored = target / str(sink).lstrip("/")
    want = treecmp.describe(sink, atime=False)
    got = treecmp.describe(restored, atime=False)
    assert treecmp.diff(want, got) == []
    assert (
        treecmp.describe(restored.parent, atime=False)[os.fsencode(sink.name)][:4]
        == (treecmp.describe(sink.parent, atime=False)[os.fsencode(sink.name)][:4])
    )


def test_gnu_tar_restores_sparse_files_sparse_and_xattrs_of_any_name(
    tmp_path: Path, repo: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    """A file with holes is a sparse member (PAX 1.0) that GNU tar makes sparse again, with
    the same content and size, ending in a hole or not; xattrs whose names are not UTF-8 or hold
    '=' or '%' come back with their names as they were."""
    src = tmp_path / "src"
    src.mkdir()
    size = 512 << 20
    blocks = {0: os.urandom(64 << 10), 300 << 20: os.urandom(4096)}
    sparse = src / "vm.img"
    with open(sparse, "wb") as f:
        for at, data in blocks.items():
            f.seek(at)
            f.write(data)
        f.truncate(size)  # ends in a hole
    ends_in_data = src / "log.img"
    with open(ends_in_data, "wb") as f:
        f.seek(100 << 20)
        f.write(b"the end")
    os.link(sparse, src / "vm-link.img")
    dense = src / "dense.bin"
    dense.write_bytes(os.urandom(300 << 10))
    names = {
        b"user.plain": b"value",
        b"user.caf\xe9": b"latin-1 name",
        b"user.a=b%25c": b"\xff\x00binary",
    }
    for name, value in names.items():
        os.setxattr(dense, name, value)
    ok(run_cli("backup", "-r", repo, src))

    archive = tmp_path / "dump.tar"
    archive.write_bytes(dump_bytes(repo, "latest", src))
    target = tmp_path / "untar"
    target.mkdir()
    untar = subprocess.run(
        ["tar", "--xattrs", "--xattrs-include=*", "-xf", str(archive), "-C", str(target)],
        capture_output=True,
        check=False,
    )
    # GNU tar takes PAX values as raw bytes anyway, and says it ignores their charset
    noise = b"tar: Ignoring unknown extended header keyword 'hdrcharset'\n"
    assert untar.returncode == 0, untar.stderr.decode()
    assert untar.stderr.replace(noise, b"") == b"", untar.stderr.decode()
    out = target / str(src).lstrip("/")
    assert sorted(os.listdir(out)) == sorted(os.listdir(src))
    for name in ("vm.img", "log.img", "dense.bin"):
        assert subprocess.run(["cmp", src / name, out / name], check=False).returncode == 0
        assert os.stat(out / name).st_size == os.stat(src / name).st_size
    assert os.stat(out / "vm.img").st_blocks * 512 <= 8 << 20  # a chunk or two, not 512 MiB
    assert os.stat(out / "log.img").st_blocks * 512 <= 8 << 20
    assert os.stat(out / "vm-link.img").st_ino == os.stat(out / "vm.img").st_ino
    got = {
        os.fsencode(n): os.getxattr(out / "dense.bin", n) for n in os.listxattr(out / "dense.bin")
    }
    assert got == names


def test_tar_headers_carry_names_times_owners_links(tmp_path: Path, repo: Path, sink: Path) -> None:
    out = tmp_path / "all.tar"
    subprocess.run([*CAIRN, "dump", "-r", str(repo), "latest", "/", "-o", str(out)], check=True)
    with tarfile.open(out, encoding="utf-8", errors="surrogateescape") as tf:
        members = {m.name: m for m in tf.getmembers()}
    base = str(sink).lstrip("/")
    assert base.split("/")[0] in members  # parents of the backed-up path are in the tar
    # 'hard too' sorts before 'top': the first name of the hardlink pair carries the data.
    first = members[f"{base}/hard too"]
    st = os.lstat(sink / "top")
    assert (first.uid, first.gid, first.mode, first.size) == (st.st_uid, st.st_gid, 0o644, 4)
    assert first.uname == (treecmp_user(st.st_uid) or "")
    assert first.pax_headers["mtime"] == "1600000000.123456789" == pax_time(st.st_mtime_ns)
    assert first.pax_headers["SCHILY.xattr.user.x"] == "y"
    assert members[f"{base}/top"].islnk()
    assert members[f"{base}/top"].linkname == f"{base}/hard too"
    assert members[f"{base}/inner/rel"].issym()
    assert members[f"{base}/inner/rel"].linkname == "../top"
    assert members[f"{base}/inner/fifo"].isfifo()
    raw = os.fsdecode(os.fsencode(f"{base}/inner/") + b"\xff\xfe")
    assert members[raw].isfile()
    assert members[f"{base}/inner/caf" + os.fsdecode(b"\xe9")].mode == 0o4755
    if os.geteuid() == 0:
        dev = members[f"{base}/inner/odd"]
        assert dev.ischr() and (dev.devmajor, dev.devminor) == (4095, 2**20 - 1)


def treecmp_user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def test_sockets_are_skipped_with_a_warning(tmp_path: Path, repo: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_text("f")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    try:
        ok(run_cli("backup", "-r", repo, src))
    finally:
        sock.close()
    out = tmp_path / "s.tar"
    res = ok(run_cli("dump", "-r", repo, "latest", src, "-o", out, "--json"))
    doc = res.json()
    assert (doc["kind"], doc["files"], doc["skipped"]) == ("tar", 1, 1)
    assert "a socket cannot be put in a tar archive" in res.err
    with tarfile.open(out) as tf:
        assert sorted(m.name.rsplit("/", 1)[-1] for m in tf.getmembers()) == ["f", "s"]


def test_dump_errors_are_one_line(tmp_path: Path, repo: Path, run_cli, sink: Path) -> None:  # type: ignore[no-untyped-def]
    res = run_cli("dump", "-r", repo, "latest", "/no/such/file", "-o", tmp_path / "x")
    assert res.code == 1 and "no such path in snapshot" in res.err
    assert not (tmp_path / "x").exists()
    res = run_cli("dump", "-r", repo, "latest", sink / "inner" / "rel", "-o", tmp_path / "x")
    assert res.code == 2 and "is a symlink" in res.err
    res = run_cli("dump", "-r", repo, "--json", "latest", sink / "top")
    assert res.code == 2 and "--json needs --target" in res.err
    for r in (res,):
        assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_a_path_not_in_the_snapshot_leaves_an_existing_target_alone(
    tmp_path: Path,
    repo: Path,
    run_cli,
    sink: Path,  # type: ignore[no-untyped-def]
) -> None:
    target = tmp_path / "keep.txt"
    target.write_bytes(b"precious")
    res = run_cli("dump", "-r", repo, "latest", "/no/such/file", "-o", target)
    assert res.code == 1 and "no such path in snapshot" in res.err
    res = run_cli("dump", "-r", repo, "f00d", sink / "top", "-o", target)
    assert res.code == 1 and "no snapshot with id f00d" in res.err
    assert target.read_bytes() == b"precious"


def test_a_file_is_read_as_a_restore_reads_it(tmp_path: Path, repo: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    """Blobs stored back to back are read together, a blob used twice is read once: the reads
    are those the restore's scheduler lists for the file."""
    src = tmp_path / "d"
    src.mkdir()
    piece = os.urandom(700 << 10)
    text = b"".join(b"line %d of a log\n" % i for i in range(400_000))
    data = text + piece + os.urandom(3 << 20) + piece + text[: 1 << 20]
    (src / "f.bin").write_bytes(data)
    ok(run_cli("backup", "-r", repo, src))
    r = open_repo(repo)
    node = files_below(r, only_snapshot(r), src)["f.bin"]
    expected = [
        (layout.pack_name(f.read.pack.id.hex()), f.read.offset, f.read.length)
        for f in Scheduler(r.index.get).fetches(node.content)
        if f.read is not None
    ]
    storage = FaultyStorage(LocalStorage(repo))
    r = Repository.open(storage, PASSWORD)
    r.load_index()
    out = io.BytesIO()
    Dumper(r, NullProgress()).run(only_snapshot(r), os.fsdecode(src / "f.bin"), out)
    reads = [
        (c.name, c.offset, c.length)
        for c in storage.log
        if c.op == "read_into" and c.name.startswith(layout.DATA)
    ]
    assert out.getvalue() == data
    assert sorted(reads) == sorted(expected)
    assert len(reads) < len(node.content)


def test_damaged_data_fails_and_leaves_no_partial_target(
    tmp_path: Path,
    repo: Path,
    run_cli,  # type: ignore[no-untyped-def]
) -> None:
    src = tmp_path / "d"
    src.mkdir()
    (src / "f.bin").write_bytes(os.urandom(3 << 20))
    ok(run_cli("backup", "-r", repo, src))
    # a bit in the middle of the file's last blob (packs of random size: which pack holds
    # what is not known beforehand)
    r = open_repo(repo)
    place = locate(r, files_below(r, only_snapshot(r), src)["f.bin"].content[-1])
    flip_bit(repo / place.pack_name, place.offset + place.length // 2)
    target = tmp_path / "out.bin"
    res = run_cli("dump", "-r", repo, "latest", src / "f.bin", "-o", target)
    assert res.code == 1
    assert "failed authentication" in res.err
    assert not target.exists()


def test_dump_text_summary(tmp_path: Path, repo: Path, run_cli, sink: Path) -> None:  # type: ignore[no-untyped-def]
    res = ok(run_cli("dump", "-r", repo, "latest", sink / "top", "-o", tmp_path / "t"))
    snap = load_snapshots(open_repo(repo, load_index=False))[0]
    assert res.out.strip() == f"wrote 4 B from snapshot {snap.id[:8]} to {tmp_path / 't'}"
    assert (tmp_path / "t").read_bytes() == b"top\n"
    res = ok(run_cli("dump", "-r", repo, "latest", sink / "ro", "-o", tmp_path / "ro.tar"))
    assert res.out.startswith("wrote a tar of 1 file, 1 dir")


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (8, "0.000000008"),
        (1_600_000_000_123_456_789, "1600000000.123456789"),
        (-1_000_000_001, "-1.000000001"),
        (-500_000_000, "-0.500000000"),
    ],
)
def test_pax_times_are_exact_decimals(ns: int, text: str) -> None:
    assert pax_time(ns) == text
