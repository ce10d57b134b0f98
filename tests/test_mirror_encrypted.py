"""Encrypted mirrors end to end (docs/mirror.md §8), through the commands a user runs: the
metadata-rich tree pushed and pulled back exactly, to a local directory read over plain HTTP
and to S3, with a store that holds no name and no content in clear; renames still copies on
the server, an unchanged push still two requests; a wrong password, a tampered object and an
unknown scheme refused; a plain mirror never asking for a password."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import blake3
import pytest

from cairn.app import mirror as app
from cairn.app.context import StackHooks, StoreOptions, stack_hooks
from cairn.core.errors import IntegrityError, StorageError
from cairn.crypto.kdf import KdfParams
from cairn.crypto.segments import encrypted_size
from cairn.ops.mirror import upload as upload_module
from cairn.ops.mirror.codec import Codec, EncryptedCodec
from cairn.ops.mirror.crypt import CONTENT_TYPE, SCHEME, MirrorCipher
from cairn.ops.mirror.manifest import Entry
from cairn.ops.mirror.reader import MARKER, open_mirror
from cairn.storage import s3objects
from cairn.storage.base import Storage
from cairn.storage.faulty import FaultyStorage
from cairn.storage.objects import Multipart
from tests.conftest import PASSWORD
from tests.httpserve import serve
from tests.test_mirror_push import _racing, interrupted_then_resumed
from tests.treecmp import describe, diff
from tests.treegen import IS_ROOT, build, kitchen_sink

SECRET = b"CAIRN-CLEARTEXT-MARKER-7f3a"  # in the content of a file, never in the store
BIG = 6 << 20  # a file that goes up in parts (with the part size below) and through a spool


@pytest.fixture(autouse=True)
def _small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files past 64 KiB are encrypted into a temporary file, and S3 objects past 5 MiB go up
    in parts of 5 MiB: the paths a large file takes, with small files."""
    monkeypatch.setattr(upload_module, "IN_MEMORY", 64 << 10)
    monkeypatch.setattr(s3objects, "Multipart", lambda *_: Multipart(5 << 20, 5 << 20))


def _ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, res.err
    return res.json()


def _tree(src: Path) -> None:
    src.mkdir()
    build(src, kitchen_sink(devices=IS_ROOT))
    (src / "secret notes.txt").write_bytes(b"the marker: " + SECRET + b"\n")
    (src / "large.bin").write_bytes(os.urandom(BIG) + SECRET)


def _names(src: Path) -> set[bytes]:
    """The file names of the tree that are long enough not to turn up in random bytes."""
    return {os.fsencode(p.name) for p in src.rglob("*") if len(os.fsencode(p.name)) >= 5}


def _stored(url: str) -> dict[str, bytes]:
    opened = app.open_store(app.MirrorSpec(url))
    return {name: opened.store.read(name) for name, _size in opened.store.list("")}


def _no_clear_text(url: str, src: Path) -> None:
    stored = _stored(url)
    assert len(stored) > 10
    for name, data in stored.items():
        for word in (*_names(src), SECRET, b"large.bin"):
            assert word not in data and word not in name.encode(), (name, word)
    files = [n for n in stored if not n.startswith(".cairn-mirror/")]
    assert files and all(len(n) == 67 and n[2] == "/" for n in files), files


def _round_trip(run_cli, src: Path, dest: str, read_from: str, out: Path) -> None:  # type: ignore[no-untyped-def]
    _tree(src)
    created = _ok(run_cli("mirror", "init", "--encrypt", dest, "--json"))
    assert created["encrypted"] is True
    first = _ok(run_cli("mirror", "push", src, dest, "--json"))
    assert first["generation"] == 1 and first["unreadable"] == []
    _no_clear_text(dest, src)
    assert json.loads(_stored(dest)[MARKER])["encryption"]["scheme"] == SCHEME
    before = describe(src, atime=False)
    pulled = _ok(run_cli("mirror", "pull", read_from, out, "--json"))
    assert pulled["downloaded"] > 0 and pulled["errors"] == []
    assert diff(before, describe(out, atime=False)) == []
    assert _ok(run_cli("mirror", "verify", dest, "--read-data", "--json"))["problems"] == []
    # unchanged: the head after the known one is missing, and nothing else is asked
    again = _ok(run_cli("mirror", "push", src, dest, "--json"))
    assert again["committed"] is False
    asked = sum(again["store"].get(k, 0) for k in ("put", "get", "head", "list", "delete", "copy"))
    assert asked <= 2 and again["store"].get("list", 0) == 0, again["store"]
    # a rename alone: a copy on the server, nothing uploaded
    os.rename(src / "large.bin", src / "large.bin.moved")
    moved = _ok(run_cli("mirror", "push", src, dest, "--json", "--delete"))
    assert (moved["copied"], moved["uploaded"], moved["uploaded_bytes"]) == (1, 0, 0)
    assert moved["removed"] == 1
    # a change, a new file and a delete; status sees them first
    (src / "secret notes.txt").write_bytes(b"changed " + SECRET)
    (src / "fresh.txt").write_text("new\n")
    (src / "top").unlink()
    plan = _ok(run_cli("mirror", "status", src, dest, "--json"))
    assert sorted(plan["would_upload"]) == ["fresh.txt", "secret notes.txt"]
    second = _ok(run_cli("mirror", "push", src, dest, "--json", "--delete"))
    assert second["uploaded"] == 2 and second["copied"] == 0
    _ok(run_cli("mirror", "pull", read_from, out, "--json", "--delete"))
    assert diff(describe(src, atime=False), describe(out, atime=False)) == []
    _no_clear_text(dest, src)
    assert _ok(run_cli("mirror", "verify", dest, "--read-data", "--json"))["problems"] == []


def test_encrypted_to_a_directory_pulled_over_plain_http(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    mirror = tmp_path / "mirror"
    with serve(tmp_path) as server:
        _round_trip(
            run_cli, tmp_path / "src", str(mirror), f"{server.url}/mirror", tmp_path / "out"
        )


def test_encrypted_to_s3_pulled_from_s3(tmp_path: Path, s3_url: str, run_cli) -> None:  # type: ignore[no-untyped-def]
    _round_trip(run_cli, tmp_path / "src", s3_url, s3_url, tmp_path / "out")
    opened = app.open_store(app.MirrorSpec(s3_url))
    files = [n for n, _ in opened.store.list("") if not n.startswith(".cairn-mirror/")]
    heads = [opened.objects.head(n) for n in files]
    assert {h.content_type for h in heads if h is not None} == {CONTENT_TYPE}
    large = [h for h in heads if h is not None and h.size == encrypted_size(BIG + len(SECRET))]
    assert len(large) == 1 and large[0].etag.rstrip('"').endswith("-2"), large  # in 2 parts


def _encrypted_mirror(run_cli, tmp_path: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    (src / "d").mkdir(parents=True)
    (src / "d" / "one.txt").write_bytes(SECRET * 5000)
    (src / "two.txt").write_text("two\n")
    _ok(run_cli("mirror", "init", "--encrypt", mirror, "--json"))
    _ok(run_cli("mirror", "push", src, mirror, "--json"))
    return src, mirror


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_a_wrong_password_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    src, mirror = _encrypted_mirror(run_cli, tmp_path)
    (src / "three.txt").write_text("3")
    before = _snapshot(mirror)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    out = tmp_path / "out"
    for args in (
        ("push", src, mirror),
        ("status", src, mirror),
        ("pull", mirror, out),
        ("verify", mirror, "--read-data"),
    ):
        res = run_cli("mirror", *args, "--password-file", wrong)
        assert res.code == 1, (args, res.err)
        assert len(res.err.strip().splitlines()) == 1 and "wrong password" in res.err, res.err
    monkeypatch.setenv("CAIRN_PASSWORD", "also wrong")
    res = run_cli("mirror", "pull", mirror, out)
    assert res.code == 1 and "wrong password" in res.err
    assert _snapshot(mirror) == before and not out.exists()
    # the right one, from a file
    right = tmp_path / "right"
    right.write_text(PASSWORD + "\n")
    _ok(run_cli("mirror", "pull", mirror, out, "--json", "--password-file", right))
    assert (out / "d" / "one.txt").read_bytes() == SECRET * 5000


def test_a_tampered_object_is_refused_by_pull_and_verify(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    _src, mirror = _encrypted_mirror(run_cli, tmp_path)
    objects = [p for p in mirror.rglob("*") if p.is_file() and ".cairn-mirror" not in p.parts]
    victim = max(objects, key=lambda p: p.stat().st_size)  # d/one.txt's
    st = victim.stat()
    with open(victim, "r+b") as f:  # in place, times kept: the ETag stays the same
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 1]))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _ok(run_cli("mirror", "verify", mirror, "--json"))["problems"] == []
    res = run_cli("mirror", "verify", mirror, "--read-data", "--json")
    assert res.code == 1
    problems = res.json()["problems"]
    assert [p["path"] for p in problems] == ["d/one.txt"], problems
    assert "authentication" in problems[0]["problem"] or "hash" in problems[0]["problem"]
    out = tmp_path / "out"
    res = run_cli("mirror", "pull", mirror, out)
    assert res.code == 3 and "d/one.txt" in res.err
    assert not (out / "d" / "one.txt").exists() and (out / "two.txt").read_text() == "two\n"
    assert not [p for p in out.rglob(".cairn-pull-*")]


def test_an_unknown_scheme_is_refused_before_a_password_is_asked(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    _src, mirror = _encrypted_mirror(run_cli, tmp_path)
    marker = json.loads((mirror / MARKER).read_bytes())
    marker["encryption"]["scheme"] = "rot13-v0"
    (mirror / MARKER).write_text(json.dumps(marker))
    asked = tmp_path / "asked"
    res = run_cli(
        "mirror", "pull", mirror, tmp_path / "out", "--password-command", f"touch {asked}"
    )
    assert res.code != 0 and "rot13-v0" in res.err and len(res.err.strip().splitlines()) == 1
    assert not asked.exists()


def test_a_plain_mirror_never_asks_for_a_password(
    tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("CAIRN_PASSWORD", raising=False)
    monkeypatch.delenv("CAIRN_PASSWORD_FILE", raising=False)
    src, mirror, out = tmp_path / "src", tmp_path / "mirror", tmp_path / "out"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    asked = tmp_path / "asked"
    ask = ("--password-command", f"touch {asked}")
    _ok(run_cli("mirror", "init", mirror, "--json", *ask))
    assert json.loads((mirror / MARKER).read_bytes())["encryption"] is None
    _ok(run_cli("mirror", "push", src, mirror, "--json", *ask))
    _ok(run_cli("mirror", "status", src, mirror, "--json", *ask))
    _ok(run_cli("mirror", "verify", mirror, "--read-data", "--json", *ask))
    _ok(run_cli("mirror", "pull", mirror, out, "--json", *ask))
    assert (out / "a.txt").read_text() == "a\n" and (mirror / "a.txt").read_text() == "a\n"
    assert not asked.exists()
    # and an encrypted one without any password source is an error, not a prompt
    res = run_cli("mirror", "init", "--encrypt", tmp_path / "enc")
    assert res.code == 2 and "no password" in res.err and not (tmp_path / "enc" / MARKER).exists()


# ---------------------------------------------------------------------- the use cases


def _spec(url: str) -> app.MirrorSpec:
    return app.MirrorSpec(url, store=StoreOptions(retries=1))  # password: $CAIRN_PASSWORD


def _push(url: str, src: Path, **kw: object) -> app.PushOutcome:
    return app.push_mirror(_spec(url), app.PushRequest(source=str(src), **kw))  # type: ignore[arg-type]


def _pulls_back(url: str, src: Path, out: Path) -> None:
    result = app.pull_mirror(_spec(url), app.PullRequest(dest=str(out), delete=True)).result
    assert result.errors == []
    assert diff(describe(src, atime=False), describe(out, atime=False)) == []
    assert app.verify_mirror(_spec(url), read_data=True).result.problems == []


def test_an_interrupted_encrypted_push_resumes_with_the_salts_it_wrote(tmp_path: Path) -> None:
    url, src = str(tmp_path / "mirror"), tmp_path / "src"
    app.init(_spec(url), encrypt=True)
    interrupted_then_resumed(url, src)
    _pulls_back(url, src, tmp_path / "out")


def _interrupt_after_two_parts(url: str, src: Path) -> None:
    parts = itertools.count()

    def wrap(store: Storage) -> Storage:
        faulty = FaultyStorage(store)
        faulty.fail("upload_part", lambda _name: next(parts) >= 2, transient=False)
        return faulty

    with stack_hooks(StackHooks(wrappers=(wrap,))), pytest.raises(StorageError):
        _push(url, src)


def _counted_push(url: str, src: Path) -> tuple[app.PushOutcome, FaultyStorage]:
    counting: list[FaultyStorage] = []

    def count(store: Storage) -> Storage:
        counting.append(FaultyStorage(store))
        return counting[-1]

    with stack_hooks(StackHooks(wrappers=(count,))):
        out = _push(url, src)
    return out, counting[0]


def test_an_interrupted_encrypted_large_file_resumes_from_its_last_part(
    tmp_path: Path, s3_url: str
) -> None:
    app.init(_spec(s3_url), encrypt=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(22 << 20))  # 5 parts of 5 MiB
    _interrupt_after_two_parts(s3_url, src)
    out, counted = _counted_push(s3_url, src)
    # the same salt seals the same parts again: the two on the store are kept
    assert counted.calls["start_upload"] == 0 and counted.calls["upload_part"] == 3
    assert out.result.uploaded == 1
    _pulls_back(s3_url, src, tmp_path / "out")


def test_an_encrypted_large_file_changed_since_its_interrupted_upload_starts_again(
    tmp_path: Path, s3_url: str
) -> None:
    app.init(_spec(s3_url), encrypt=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(22 << 20))
    _interrupt_after_two_parts(s3_url, src)
    (src / "big.bin").write_bytes(os.urandom(22 << 20))  # the same size, other content
    out, counted = _counted_push(s3_url, src)
    assert counted.calls["start_upload"] == 1 and counted.calls["upload_part"] == 5
    assert out.result.uploaded == 1
    _pulls_back(s3_url, src, tmp_path / "out")


def test_two_encrypted_pushes_at_once_lose_no_update(tmp_path: Path) -> None:
    url, one, two = str(tmp_path / "mirror"), tmp_path / "one", tmp_path / "two"
    app.init(_spec(url), encrypt=True)
    for src in (one, two):
        (src / "docs").mkdir(parents=True)
        (src / "docs" / "a.txt").write_text("alpha\n")
    _push(url, one)
    (one / "from-one").write_text("1")
    (one / "docs" / "a.txt").write_text("one wins")
    (two / "from-two").write_text("2")
    (two / "docs" / "a.txt").write_text("two loses")
    pending: list[Callable[[], object]] = [lambda: _push(url, two)]
    with stack_hooks(StackHooks(wrappers=(lambda s: _racing(s, pending),))):
        out = _push(url, one)
    assert out.result.conflicts == 1
    pulled = tmp_path / "out"
    app.pull_mirror(_spec(url), app.PullRequest(dest=str(pulled)))
    got = {str(p.relative_to(pulled)): p.read_text() for p in pulled.rglob("*") if p.is_file()}
    assert got == {"docs/a.txt": "one wins", "from-one": "1", "from-two": "2"}
    assert app.verify_mirror(_spec(url), read_data=True).result.problems == []


def test_compacted_encrypted_manifests_collect_old_heads_and_stay_sealed(tmp_path: Path) -> None:
    url, src = str(tmp_path / "mirror"), tmp_path / "src"
    app.init(_spec(url), encrypt=True)
    src.mkdir()
    (src / "keep").write_bytes(os.urandom(5000))
    for i in range(12):
        (src / f"file-{i}").write_text(f"content {i}\n")
        _push(url, src)
    heads = sorted((Path(url) / ".cairn-mirror" / "heads").iterdir())
    assert heads[-1].name == f"{12:020d}" and len(heads) < 12  # compactions collected some
    pieces = list((Path(url) / ".cairn-mirror" / "manifest").iterdir())
    for piece in pieces:
        data = piece.read_bytes()
        assert blake3.blake3(data).hexdigest() == piece.name and data[:1] == b"\x01"
        assert not data.startswith(b"\x28\xb5\x2f\xfd")  # no zstandard frame in clear
    for head in heads:
        assert b"generation" not in head.read_bytes()
    _pulls_back(url, src, tmp_path / "out")


@pytest.mark.parametrize("size", [100, 200_000])  # encrypted in memory; into a temporary file
def test_a_file_changing_while_it_goes_up_is_sent_again_or_reported(
    tmp_path: Path, size: int
) -> None:
    url, src = str(tmp_path / "mirror"), tmp_path / "src"
    app.init(_spec(url), encrypt=True)
    src.mkdir()
    (src / "once").write_bytes(b"o" * size)
    (src / "always").write_bytes(b"a" * size)

    def grow(name: str) -> Callable[[], None]:
        def append() -> None:
            with open(src / name, "ab") as f:
                f.write(b"+")

        return append

    keys = {name: _object_of(url, name.encode()) for name in ("once", "always")}

    def wrap(store: Storage) -> Storage:
        faulty = FaultyStorage(store)
        for name, times in (("once", 1), ("always", None)):
            faulty.before("put_object", keys[name], grow(name), times=times)
        return faulty

    with stack_hooks(StackHooks(wrappers=(wrap,))):
        out = _push(url, src)
    assert [u.path for u in out.result.unreadable] == [b"always"]
    assert "kept changing" in out.result.unreadable[0].error
    pulled = tmp_path / "out"
    app.pull_mirror(_spec(url), app.PullRequest(dest=str(pulled)))
    assert (pulled / "once").read_bytes() == b"o" * size + b"+"
    assert not (pulled / "always").exists()
    assert app.verify_mirror(_spec(url), read_data=True).result.problems == []


def _object_of(url: str, path: bytes) -> str:
    """The key of ``path``'s object in the encrypted mirror at ``url``."""
    opened = app.open_store(_spec(url))
    _marker, codec = open_mirror(opened.store, app.MirrorSpec(url).password.get)
    return codec.key(path)


def test_the_encrypted_codec_refuses_an_entry_without_its_salt_or_with_another() -> None:
    cipher, _value = MirrorCipher.create(
        b"pw", KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    )
    codec = EncryptedCodec(cipher)
    obj, salt = cipher.encrypt_all(b"content")
    entry = Entry(b"f", "file", 0o644, 0, 0, 0, size=7, hash=bytes(32), salt=salt)
    assert b"".join(codec.plain([obj], entry, "object x")) == b"content"
    assert codec.stored_size(7) == len(obj) and codec.content_type(b"a.jpg") == CONTENT_TYPE
    with pytest.raises(IntegrityError, match="no salt"):
        codec.plain([obj], replace(entry, salt=None), "object x")
    with pytest.raises(IntegrityError, match="object x"):
        b"".join(codec.plain([obj], replace(entry, salt=bytes(32)), "object x"))
    plain = Codec(0)  # a plain mirror's: the object is the file
    assert b"".join(plain.plain([b"con", b"tent"], entry, "x")) == b"content"
    assert plain.seal_head(b"{}") == b"{}" and plain.stored_size(7) == 7
