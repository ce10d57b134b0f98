"""Pulling a mirror (cairn.ops.mirror.pull) from a local directory and over plain HTTP: the
tree comes back exactly, only what changed is downloaded, altered objects and hostile
manifests are refused without writing anything wrong, ``delete`` and ``include`` act on what
they should only; and the read-only HTTP store (cairn.storage.http) on its own."""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, given, settings

from cairn.core.errors import ObjectMissing, StorageError, TransientStorageError
from cairn.ops.filter_patterns import PatternList
from cairn.ops.mirror import fetch
from cairn.ops.mirror.manifest import Entry, ManifestError
from cairn.ops.mirror.pull import BadDestination, NothingCommitted, PullResult, pull
from cairn.ops.mirror.reader import MARKER, NotAMirror
from cairn.storage.base import Storage
from cairn.storage.http import HttpStorage
from cairn.storage.local import LocalStorage
from cairn.storage.retry import RetryingStorage, RetryPolicy
from cairn.storage.s3 import S3Storage
from cairn.storage.s3config import S3Location
from tests.conftest import NOBODY
from tests.httpserve import Server, serve
from tests.mirrorgen import MirrorMaker
from tests.treecmp import describe, diff
from tests.treegen import IS_ROOT, Dir, build, kitchen_sink, trees

OLD = 1_500_000_000_123_456_789


@pytest.fixture
def mirror_dir(tmp_path: Path) -> Path:
    path = tmp_path / "mirror"
    path.mkdir()
    return path


@pytest.fixture
def server(mirror_dir: Path) -> Iterator[Server]:
    with serve(mirror_dir) as s:
        yield s


@pytest.fixture
def maker(mirror_dir: Path, tmp_path: Path) -> MirrorMaker:
    return MirrorMaker(LocalStorage(mirror_dir), tmp_path / "state.sqlite")


@pytest.fixture(params=["local", "http"])
def reader(request: pytest.FixtureRequest, mirror_dir: Path) -> Callable[[], Storage]:
    """Opens the mirror as a pull reads it: the directory itself, or a web server in front of
    it. A store per pull, as each pull opens it: a local directory's store keeps the objects
    it read open, and the mirror's objects are replaced between the pulls of a test."""
    if request.param == "local":
        return lambda: LocalStorage(mirror_dir)
    url = request.getfixturevalue("server").url
    return lambda: HttpStorage(url)


def pulled(store: Storage, dest: Path, **options: object) -> PullResult:
    result = pull(store, os.fsencode(dest), **options)  # type: ignore[arg-type]
    assert result.errors == []
    return result


def write(path: Path, data: bytes, mode: int = 0o644, mtime: int = OLD) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    os.utime(path, ns=(mtime, mtime))


def small_tree(root: Path) -> None:
    write(root / "a", b"alpha")
    write(root / "d" / "b", b"bravo" * 1000)
    write(root / "d" / "e" / "c", b"charlie")


def leftovers(root: Path) -> list[str]:
    return [
        str(p) for p in root.rglob("*") if p.name.startswith(".cairn-pull-") or ".tmp-" in p.name
    ]


# ---------------------------------------------------------------------------- round trips


def test_a_pull_gives_the_tree_back_exactly(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    build(src, kitchen_sink(devices=IS_ROOT))
    before = describe(src, atime=False)
    maker.push(src)
    result = pulled(reader(), out / "new")  # a destination that does not exist yet
    assert diff(before, describe(out / "new", atime=False)) == []
    assert result.linked == 2 and result.kept == 0
    assert (
        result.downloaded
        == sum(1 for e in maker.entries.values() if e.type == "file") - result.linked
    )
    # holes stay holes: the all-zero file takes no blocks
    zeros = out / "new" / "inner" / "ünïcødé ☃"
    assert zeros.stat().st_size == 100 << 10 and zeros.stat().st_blocks == 0
    # and nothing of the mirror's own area, nor temporary files, came along
    assert not (out / "new" / ".cairn-mirror").exists()
    assert leftovers(out) == []


_examples = itertools.count()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tree=trees(devices=IS_ROOT))
def test_any_tree_comes_back_exactly(tree: Dir, tmp_path: Path) -> None:
    base = tmp_path / f"example-{next(_examples)}"
    src, out, mirror = base / "src", base / "out", base / "mirror"
    src.mkdir(parents=True)
    mirror.mkdir()
    build(src, tree)
    before = describe(src, atime=False)
    MirrorMaker(LocalStorage(mirror), base / "state.sqlite").push(src)
    pulled(LocalStorage(mirror), out)
    assert diff(before, describe(out, atime=False)) == []


def test_the_s3_bucket_is_pulled_as_a_directory(tmp_path: Path, s3_url: str) -> None:
    location = S3Location.parse(s3_url)
    store = S3Storage(location)
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    build(src, kitchen_sink(devices=IS_ROOT))
    before = describe(src, atime=False)
    prefix_len = len(location.prefix.rstrip("/").encode())
    MirrorMaker(store, tmp_path / "state.sqlite", prefix_len).push(src)
    pulled(store, out, prefix_len=prefix_len)
    assert diff(before, describe(out, atime=False)) == []


# ---------------------------------------------------------------------------- only what changed


def test_only_what_changed_is_downloaded(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    small_tree(src)
    maker.push(src)
    first = pulled(reader(), out)
    assert (first.downloaded, first.kept, first.bytes) == (3, 0, 5 + 5000 + 7)

    again = pulled(reader(), out)
    assert (again.downloaded, again.kept, again.bytes, again.others) == (0, 3, 0, 0)

    write(src / "d" / "b", b"BRAVO" * 1000, mtime=OLD + 1)
    maker.push(src)
    one = pulled(reader(), out)
    assert (one.downloaded, one.kept, one.bytes) == (1, 2, 5000)
    assert (out / "d" / "b").read_bytes() == b"BRAVO" * 1000

    os.chmod(src / "a", 0o4750)  # metadata alone: applied, nothing downloaded
    maker.push(src)
    meta = pulled(reader(), out)
    assert (meta.downloaded, meta.kept) == (0, 3)
    assert stat.S_IMODE((out / "a").stat().st_mode) == 0o4750
    assert diff(describe(src, atime=False), describe(out, atime=False)) == []


def test_checksum_reads_what_size_and_time_would_trust(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    small_tree(src)
    maker.push(src)
    pulled(reader(), out)
    write(out / "a", b"ALPHA")  # same size, same time: trusted unread by default
    assert pulled(reader(), out).downloaded == 0
    assert (out / "a").read_bytes() == b"ALPHA"
    result = pulled(reader(), out, checksum=True)
    assert (result.downloaded, result.kept) == (1, 2)
    assert (out / "a").read_bytes() == b"alpha"


def test_a_hard_link_group_is_one_inode_again(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    write(src / "x", b"shared")
    (src / "d").mkdir()
    os.link(src / "x", src / "d" / "y")
    os.link(src / "x", src / "z")
    maker.push(src)
    write(out / "z", b"a file of its own")  # in the way of one name of the group
    result = pulled(reader(), out)
    assert (result.downloaded, result.linked) == (1, 2)
    inodes = {(out / p).stat().st_ino for p in ("x", "d/y", "z")}
    assert len(inodes) == 1 and (out / "x").stat().st_nlink == 3
    again = pulled(reader(), out)
    assert (again.downloaded, again.linked, again.kept) == (0, 0, 3)


_PULL_AS_ANYONE = """
import json, sys
from cairn.ops.mirror.pull import pull
from cairn.storage.local import LocalStorage
r = pull(LocalStorage(sys.argv[1]), sys.argv[2].encode(), delete=True)
doc = r.as_dict()
doc["errors"] = [[p.decode(errors="replace"), m] for p, m in r.errors]
print(json.dumps(doc))
"""


def test_a_pull_by_a_user_without_privileges(unprivileged_base: Path) -> None:
    """As 'nobody' when the tests run as root: owners are the user's own, device nodes cannot
    be made (an error each), everything else comes back, modes 000 and setuid included."""
    src, mirror, out = (unprivileged_base / n for n in ("src", "mirror", "out"))
    write(src / "a", b"alpha")
    write(src / "secret", b"nobody may read this", mode=0o000)
    write(src / "suid", b"#!/bin/sh\n", mode=0o4755)
    write(src / "ro" / "f", b"in a read-only directory")
    os.link(src / "a", src / "ro" / "hard")
    os.chmod(src / "ro", 0o500)
    os.symlink("a", src / "link")
    os.mkfifo(src / "fifo", 0o640)
    if IS_ROOT:
        os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for p in (src / "ro", src):
        os.utime(p, ns=(OLD, OLD))
    mirror.mkdir()
    MirrorMaker(LocalStorage(mirror), unprivileged_base / "state.sqlite").push(src)
    cmd = [sys.executable, "-c", _PULL_AS_ANYONE, os.fspath(mirror), os.fspath(out)]
    if IS_ROOT:
        for p in [mirror, *mirror.rglob("*")]:
            os.chown(p, NOBODY, NOBODY, follow_symlinks=False)
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]

    def pull_as_anyone() -> dict[str, object]:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", check=False)
        assert proc.returncode == 0, proc.stderr
        doc: dict[str, object] = json.loads(proc.stdout)
        return doc

    first = pull_as_anyone()
    devices = [["null", "Operation not permitted"]] if IS_ROOT else []
    assert first["errors"] == devices
    assert (first["downloaded"], first["linked"]) == (4, 1)
    want = {p: e[:2] + e[4:] for p, e in describe(src, atime=False).items() if p != b"null"}
    got = {p: e[:2] + e[4:] for p, e in describe(out, atime=False).items()}
    assert got == want
    assert {(out / p).lstat().st_uid for p in ("a", "ro", "link")} == {
        NOBODY if IS_ROOT else os.geteuid()
    }
    write(out / "gone" / "f", b"not in the mirror")
    os.chmod(out / "gone", 0o500)  # the user's own, read-only: removed all the same
    if IS_ROOT:
        for p in (out / "gone", out / "gone" / "f"):
            os.chown(p, NOBODY, NOBODY)
    again = pull_as_anyone()
    assert (again["downloaded"], again["kept"], again["errors"]) == (0, 5, devices)
    assert again["removed"] == 2 and not (out / "gone").exists()


# ---------------------------------------------------------------------------- refusals


def test_an_altered_object_is_refused_and_the_old_file_kept(
    tmp_path: Path, maker: MirrorMaker, mirror_dir: Path, reader: Callable[[], Storage]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    small_tree(src)
    maker.push(src)
    pulled(reader(), out)
    write(src / "d" / "b", b"BRAVO" * 1000, mtime=OLD + 1)
    maker.push(src)
    obj = mirror_dir / "d" / "b"
    data = bytearray(obj.read_bytes())
    data[4321] ^= 1  # the same size: only the hash tells
    maker.put_object(b"d/b", bytes(data))
    result = pull(reader(), os.fsencode(out))
    assert len(result.errors) == 1
    path, message = result.errors[0]
    assert path == b"d/b"
    assert "object d/b" in message and "does not match" in message and "\n" not in message
    assert (out / "d" / "b").read_bytes() == b"bravo" * 1000
    assert (out / "d" / "b").stat().st_mtime_ns == OLD
    assert leftovers(out) == []
    assert result.downloaded == 0 and result.kept == 2


def test_a_missing_object_is_an_error_of_its_file(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    small_tree(src)
    maker.push(src)
    maker.store.delete("d/e/c")
    result = pull(reader(), os.fsencode(out))
    assert [(p, "missing" in m) for p, m in result.errors] == [(b"d/e/c", True)]
    assert not (out / "d" / "e" / "c").exists() and (out / "a").read_bytes() == b"alpha"
    assert leftovers(out) == []


def test_a_store_without_marker_is_no_mirror(tmp_path: Path, server: Server) -> None:
    store = HttpStorage(server.url + "/nothing/here")
    with pytest.raises(NotAMirror, match=r"http://127\.0\.0\.1:\d+/nothing/here is not a mirror"):
        pull(store, os.fsencode(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_destination_that_is_a_file_is_refused(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    src = tmp_path / "src"
    small_tree(src)
    maker.push(src)
    write(tmp_path / "out", b"a file")
    with pytest.raises(BadDestination, match=r"cannot pull into .*/out: File exists"):
        pull(reader(), os.fsencode(tmp_path / "out"))


def test_a_mirror_is_never_pulled_into_a_mirror(
    tmp_path: Path, maker: MirrorMaker, mirror_dir: Path, reader: Callable[[], Storage]
) -> None:
    src = tmp_path / "src"
    small_tree(src)
    maker.push(src)
    before = describe(mirror_dir, atime=False)  # the pull reads the mirror, as it must
    with pytest.raises(BadDestination, match="holds a mirror itself"):
        pull(reader(), os.fsencode(mirror_dir), delete=True)
    assert describe(mirror_dir, atime=False) == before


def test_a_mirror_without_generation_has_nothing_to_pull(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    with pytest.raises(NothingCommitted, match="no generation yet"):
        pull(reader(), os.fsencode(tmp_path / "out"), delete=True)


def _file(path: bytes, data: bytes = b"x") -> Entry:
    return Entry(path, "file", 0o644, 0, 0, OLD, size=len(data), hash=blake3.blake3(data).digest())


def _dir(path: bytes) -> Entry:
    return Entry(path, "dir", 0o755, 0, 0, OLD)


@pytest.mark.parametrize(
    "entries",
    [
        [_file(b"../escaped")],
        [_file(b"/tmp/escaped")],
        [_dir(b"a"), _file(b"a/../../escaped")],
        [_file(b"a//escaped")],
        [  # a symbolic link out of the target, then a file below it
            Entry(b"link", "symlink", 0o777, 0, 0, OLD, target=b"../outside"),
            _file(b"link/escaped"),
        ],
        [_file(b"f"), _file(b"f/escaped")],  # below a file
    ],
    ids=["dotdot", "absolute", "dotdot-inside", "empty-part", "via-symlink", "below-file"],
)
def test_a_hostile_manifest_writes_nothing(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage], entries: list[Entry]
) -> None:
    (tmp_path / "outside").mkdir()
    maker.commit({e.path: e for e in entries})
    with pytest.raises(ManifestError):
        pull(reader(), os.fsencode(tmp_path / "out"))
    assert list((tmp_path / "outside").iterdir()) == []
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert not (tmp_path / "out").exists()


def test_symlinks_already_in_the_target_are_never_followed(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    outside = tmp_path / "outside"
    write(outside / "victim", b"keep me")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "d")  # where the manifest has a directory
    os.symlink(outside / "victim", out / "a")  # where it has a file
    src = tmp_path / "src"
    small_tree(src)
    maker.push(src)
    pulled(reader(), out)
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_bytes() == b"keep me"
    assert not (out / "d").is_symlink() and not (out / "a").is_symlink()
    assert diff(describe(src, atime=False), describe(out, atime=False)) == []


def test_a_name_the_system_cannot_hold_is_an_error_of_its_own(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    maker.put_object(b"ok", b"x")
    maker.commit({b"ok": _file(b"ok"), b"nul\0name": _file(b"nul\0name")})
    result = pull(reader(), os.fsencode(tmp_path / "out"))
    assert [p for p, _ in result.errors] == [b"nul\0name"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok"]


# ---------------------------------------------------------------------------- delete, include


def test_delete_removes_what_the_manifest_does_not_have(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    small_tree(src)
    maker.push(src)
    pulled(reader(), out)
    write(out / "x", b"extra")
    write(out / "d" / "y", b"extra")
    write(out / "d" / "z" / "w", b"extra")
    os.chmod(out / "d" / "z", 0o500)
    os.symlink(tmp_path / "src", out / "d" / "e" / "link")  # removed, never followed
    (out / "a").unlink()
    write(out / "a" / "inside", b"a directory where the manifest has a file")

    kept = pull(reader(), os.fsencode(out))
    assert kept.removed == 0
    assert [(p, m) for p, m in kept.errors] == [(b"a", "a directory is in the way")]
    assert (out / "x").exists() and (out / "d" / "z" / "w").exists()

    result = pulled(reader(), out, delete=True)
    assert result.removed == 7  # x, d/y, d/z/w, d/z, d/e/link, a/inside, a
    assert diff(describe(src, atime=False), describe(out, atime=False)) == []
    assert (tmp_path / "src" / "a").read_bytes() == b"alpha"


def test_include_selects_paths_and_their_parents(
    tmp_path: Path, maker: MirrorMaker, reader: Callable[[], Storage]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    small_tree(src)
    os.utime(src / "d", ns=(OLD, OLD))
    maker.push(src)
    result = pulled(reader(), out, include=PatternList(["/d/e"]))
    assert result.downloaded == 1
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["d", "d/e", "d/e/c"]
    assert (out / "d").stat().st_mtime_ns == OLD  # a parent gets its metadata too

    write(out / "x", b"not selected")
    write(out / "d" / "y", b"not selected either: only d/e is")
    write(out / "d" / "e" / "extra", b"selected, not in the manifest")
    result = pulled(reader(), out, include=PatternList(["/d/e"]), delete=True)
    assert result.removed == 1
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "d",
        "d/e",
        "d/e/c",
        "d/y",
        "x",
    ]


def test_pull_over_a_server_that_ignores_ranges(
    tmp_path: Path, maker: MirrorMaker, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "READ", 1000)  # a file in several reads
    server.ignore_range = True
    src, out = tmp_path / "src", tmp_path / "out"
    small_tree(src)
    maker.push(src)
    pulled(HttpStorage(server.url), out, workers=2)
    assert diff(describe(src, atime=False), describe(out, atime=False)) == []
    # the file is read in five reads, but downloaded once: what the first GET brought
    # (the whole object) is read on by the four others
    assert [r for _m, p, r in server.requests if p == b"/d/b"] == ["bytes=0-999"]


# ---------------------------------------------------------------------------- the HTTP store


ODD = "dir/a b?c#d%e+f&g=h;ü\\ (x).txt"


def test_the_http_store_reads_ranges_of_any_key(mirror_dir: Path, server: Server) -> None:
    LocalStorage(mirror_dir).write(ODD, b"0123456789")
    store = HttpStorage(server.url + "/")
    assert store.read(ODD) == b"0123456789"
    assert store.read(ODD, 2, 3) == b"234"
    assert store.read(ODD, 7) == b"789"
    assert store.read(ODD, 20, 5) == b""
    assert store.read(ODD, 4, 0) == b""
    assert store.stat(ODD) == 10
    buf = bytearray(4)
    assert store.read_into(ODD, 8, memoryview(buf)) == 2 and buf[:2] == b"89"
    assert {p for _, p, _ in server.requests} == {b"/" + ODD.encode()}
    server.ignore_range = True
    assert store.read(ODD, 2, 3) == b"234"
    assert store.read(ODD, 7) == b"789"
    asked = len(server.requests)
    assert store.read(ODD, 0, 4) == b"0123"  # the rest of the body is kept for what follows
    assert store.read(ODD, 4, 4) == b"4567"
    assert store.read(ODD, 8, 4) == b"89"
    assert len(server.requests) == asked + 1
    assert store.read(ODD, 0, 4) == b"0123"
    assert store.read(ODD, 6, 2) == b"67"  # not where the kept body stands: asked again
    assert len(server.requests) == asked + 3
    server.no_head = True
    assert store.stat(ODD) == 10
    server.ignore_range = False
    assert store.stat(ODD) == 10
    assert server.requests[-1][0] == "GET"


def test_the_http_store_refuses_what_it_cannot_do(server: Server) -> None:
    store = HttpStorage(server.url)
    with pytest.raises(ObjectMissing, match=rf"^{server.url}/dir/missing: no such object"):
        store.read("dir/missing")
    with pytest.raises(ObjectMissing):
        store.stat("missing")
    server.status[b"/private"] = 403
    with pytest.raises(StorageError, match=rf"^{server.url}/private: access denied") as e:
        store.read("private")
    assert not isinstance(e.value, TransientStorageError)
    server.status[b"/teapot"] = 418
    with pytest.raises(StorageError, match=rf"^{server.url}/teapot: HTTP 418"):
        store.stat("teapot")
    server.status[b"/broken"] = 500
    with pytest.raises(TransientStorageError, match=rf"^{server.url}/broken: HTTP 500"):
        store.read("broken", 5, 5)
    with pytest.raises(StorageError, match="read-only"):
        store.write("x", b"data")
    with pytest.raises(StorageError, match="read-only"):
        store.delete("x")
    with pytest.raises(StorageError, match="cannot be listed"):
        list(store.list(""))
    assert store.archive is None and store.describe() == server.url
    for bad in ("ftp://host/x", "http://user:secret@host/x", "https://host/x?a=b", "nohost"):
        with pytest.raises(StorageError):
            HttpStorage(bad)


def test_transient_http_errors_are_retried_by_the_retry_wrapper(
    mirror_dir: Path, server: Server
) -> None:
    LocalStorage(mirror_dir).write("obj", b"data")
    store = HttpStorage(server.url)
    server.fail_next = 1
    with pytest.raises(TransientStorageError, match=rf"^{server.url}/obj: HTTP 503"):
        store.read("obj")
    server.fail_next = 2
    retrying = RetryingStorage(store, RetryPolicy(attempts=3, sleep=lambda _s: None))
    assert retrying.read("obj") == b"data"


def test_an_unreachable_server_fails_at_once_in_one_line() -> None:
    store = HttpStorage("http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(StorageError) as e:
        store.read(MARKER)
    assert not isinstance(e.value, TransientStorageError)
    assert str(e.value).startswith("http://127.0.0.1:9/.cairn-mirror/mirror: cannot connect")
    assert "\n" not in str(e.value)


def test_a_marker_is_read_over_http(mirror_dir: Path, server: Server) -> None:
    LocalStorage(mirror_dir).write(MARKER, json.dumps({"format": "x"}).encode())
    with pytest.raises(NotAMirror, match="not a cairn mirror's marker"):
        pull(HttpStorage(server.url), os.fsencode(mirror_dir / "out"))
