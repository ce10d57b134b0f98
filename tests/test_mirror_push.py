"""cairn mirror push against a local directory and SeaweedFS: objects byte for byte, the
request budget of unchanged and one-file pushes, renames as copies, metadata-only changes,
deletes and the trash, resumed and concurrent pushes, files that change while read."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from cairn.app import mirror as app
from cairn.app.context import StackHooks, StoreOptions, stack_hooks
from cairn.core.errors import StorageError
from cairn.ops.mirror.keys import object_key
from cairn.ops.mirror.reader import (
    NotAMirror,
    head_path,
    load_manifest,
    newest_head,
    read_marker,
)
from cairn.storage.base import Storage
from cairn.storage.faulty import FaultyStorage
from tests.faults import on_s3_client
from tests.test_storage_objects import refuse_copies_as_too_large


@pytest.fixture(params=["local", "s3"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (
        str(tmp_path / "mirror") if request.param == "local" else request.getfixturevalue("s3_url")
    )
    app.init(app.MirrorSpec(url))
    return url


def _spec(url: str, **store: object) -> app.MirrorSpec:
    return app.MirrorSpec(url, store=StoreOptions(retries=1, **store))  # type: ignore[arg-type]


def _push(url: str, src: Path, **kw: object) -> app.PushOutcome:
    return app.push_mirror(_spec(url), app.PushRequest(source=str(src), **kw))  # type: ignore[arg-type]


def _manifest(url: str) -> dict[bytes, object]:
    opened = app.open_store(_spec(url))
    head = newest_head(opened.store)
    assert head is not None
    return load_manifest(opened.store, head)  # type: ignore[return-value]


def _object(url: str, path: bytes) -> bytes:
    opened = app.open_store(_spec(url))
    return opened.store.read(object_key(path, read_marker(opened.store).prefix_bytes))


def _requests(usage: dict[str, int]) -> int:
    return sum(usage.get(k, 0) for k in ("put", "get", "head", "list", "delete", "copy"))


def _tree(root: Path) -> None:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha\n")
    (root / "docs" / "b.html").write_text("<p>beta</p>")
    (root / "photo.jpg").write_bytes(os.urandom(300_000))
    (root / "empty").write_bytes(b"")
    os.symlink("docs/a.txt", root / "link")
    os.mkfifo(root / "fifo")


def test_a_push_puts_every_file_as_its_object_and_an_unchanged_push_makes_two_requests(
    dest: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src)
    first = _push(dest, src)
    r = first.result
    assert r.committed and r.generation == 1 and not r.unreadable
    assert r.uploaded == 4 and r.uploaded_bytes == 300_000 + 6 + 11
    for rel in (b"docs/a.txt", b"docs/b.html", b"photo.jpg", b"empty"):
        assert _object(dest, rel) == (src / os.fsdecode(rel)).read_bytes()
    entries = _manifest(dest)
    assert set(entries) == {
        b"docs",
        b"docs/a.txt",
        b"docs/b.html",
        b"photo.jpg",
        b"empty",
        b"link",
        b"fifo",
    }
    assert entries[b"link"].target == b"docs/a.txt"  # type: ignore[attr-defined]
    assert entries[b"fifo"].type == "fifo"  # type: ignore[attr-defined]
    again = _push(dest, src)
    assert not again.result.committed and again.result.uploaded == 0
    assert _requests(again.usage) <= 2 and again.usage.get("list", 0) == 0, again.usage
    assert again.result.files_read == 0  # trusted by the state file


def test_one_changed_file_costs_at_most_five_requests(dest: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    (src / "many").mkdir()
    for i in range(100):  # a manifest whose one-entry delta is small beside its base
        (src / "many" / f"file-{i:03d}.txt").write_text(f"{i}\n")
    _push(dest, src)
    (src / "docs" / "a.txt").write_text("alpha, changed\n")
    out = _push(dest, src)
    assert out.result.uploaded == 1 and out.result.generation == 2
    assert _requests(out.usage) <= 5, out.usage
    assert _object(dest, b"docs/a.txt") == b"alpha, changed\n"


def test_a_rename_is_a_server_side_copy_and_metadata_alone_rewrites_the_manifest(
    dest: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src)
    _push(dest, src)
    os.rename(src / "photo.jpg", src / "docs" / "moved.jpg")
    out = _push(dest, src, delete=True)
    r = out.result
    assert r.uploaded == 0 and r.copied == 1 and r.removed == 1
    assert out.usage.get("bytes_up", 0) < 10_000  # the manifest only
    assert _object(dest, b"docs/moved.jpg") == (src / "docs" / "moved.jpg").read_bytes()
    with pytest.raises(StorageError):
        _object(dest, b"photo.jpg")
    os.chmod(src / "docs" / "a.txt", 0o600)
    out = _push(dest, src)
    assert out.result.committed and out.result.uploaded == 0 and out.result.copied == 0
    assert out.result.metadata_only == 1
    assert _manifest(dest)[b"docs/a.txt"].mode == 0o600  # type: ignore[attr-defined]


def test_a_rename_of_a_file_too_large_to_copy_at_once_is_copied_in_parts(
    s3_url: str, tmp_path: Path
) -> None:
    """AWS copies a source over 5 GiB only in parts (the test server copies any size, so its
    refusal is made up at the client): the rename is still a server-side copy, in parts,
    with nothing uploaded but the manifest."""
    app.init(app.MirrorSpec(s3_url))
    src = tmp_path / "src"
    _tree(src)
    _push(s3_url, src)
    os.rename(src / "photo.jpg", src / "moved.jpg")
    with stack_hooks(StackHooks(wrappers=(on_s3_client(refuse_copies_as_too_large),))):
        out = _push(s3_url, src, delete=True)
    r = out.result
    assert r.uploaded == 0 and r.copied == 1 and r.removed == 1
    assert out.usage.get("bytes_up", 0) < 10_000  # the manifest only
    assert _object(s3_url, b"moved.jpg") == (src / "moved.jpg").read_bytes()


def test_deleted_files_keep_their_objects_unless_asked_and_the_trash_is_purged(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "mirror")
    app.init(app.MirrorSpec(url))
    src = tmp_path / "src"
    _tree(src)
    _push(url, src)
    (src / "empty").unlink()
    out = _push(url, src)
    assert out.result.kept == 1 and (tmp_path / "mirror" / "empty").exists()
    assert b"empty" not in _manifest(url)
    (src / "docs" / "b.html").unlink()
    out = _push(url, src, keep_deleted_days=0)
    assert out.result.trashed == 1 and not (tmp_path / "mirror" / "docs" / "b.html").exists()
    trash = list((tmp_path / "mirror" / ".cairn-mirror" / "trash").rglob("b.html"))
    assert len(trash) == 1 and trash[0].read_text() == "<p>beta</p>"
    (src / "new").write_text("n")
    out = _push(url, src, keep_deleted_days=0)
    assert out.result.purged == 1 and not list((tmp_path / "mirror").rglob("b.html"))


def test_a_push_with_a_lost_state_finds_the_trash_and_purges_it_after_its_days(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "mirror")
    app.init(app.MirrorSpec(url))
    src = tmp_path / "src"
    _tree(src)
    _push(url, src)
    (src / "docs" / "b.html").unlink()
    assert _push(url, src, keep_deleted_days=30).result.trashed == 1
    trash = tmp_path / "mirror" / ".cairn-mirror" / "trash"
    reported = app.verify_mirror(_spec(url), read_data=False).result.trash
    assert [(n, size) for _g, n, size in reported] == [(1, len("<p>beta</p>"))]
    _forget_state(tmp_path)
    out = _push(url, src, keep_deleted_days=1)  # found, dated by its head: a day is not past
    assert out.result.purged == 0 and list(trash.rglob("b.html"))
    _forget_state(tmp_path)
    out = _push(url, src, keep_deleted_days=0)
    assert out.result.purged == 1 and not list(trash.rglob("b.html"))
    assert app.verify_mirror(_spec(url), read_data=False).result.trash == []


def test_a_push_with_a_lost_state_collects_every_old_head_at_its_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old heads left far below (pushes that committed and never collected), then the state
    lost: its first compaction lists the heads and collects them all, not only the last 64."""
    from cairn.ops.mirror import push as push_module

    url = str(tmp_path / "mirror")
    app.init(app.MirrorSpec(url))
    src = tmp_path / "src"
    src.mkdir()
    with monkeypatch.context() as m:
        m.setattr(push_module._Run, "_collect", lambda *_: None)
        for i in range(70):  # a tiny manifest: every push compacts
            (src / "counter").write_text(str(i))
            _push(url, src)
    heads = tmp_path / "mirror" / ".cairn-mirror" / "heads"
    assert len(list(heads.iterdir())) == 70
    assert app.verify_mirror(_spec(url), read_data=False).result.old_heads == list(range(1, 69))
    _forget_state(tmp_path)
    (src / "counter").write_text("last")
    _push(url, src)
    assert sorted(int(p.name) for p in heads.iterdir()) == [70, 71]
    assert app.verify_mirror(_spec(url), read_data=False).result.old_heads == []


def test_not_a_mirror_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    target = tmp_path / "plain"
    target.mkdir()
    src = tmp_path / "src"
    _tree(src)
    with pytest.raises(NotAMirror):
        _push(str(target), src)
    assert list(target.iterdir()) == []


def _racing(store: Storage, pending: list[Callable[[], object]]) -> Storage:
    """The store of a push during which another push commits, just before this one does
    (``pending`` is shared by every stack built: the other push runs once)."""
    faulty = FaultyStorage(store)

    def other() -> None:
        if pending:
            pending.pop()()

    faulty.before("create", ".cairn-mirror/heads/", other, times=None)
    return faulty


def test_two_pushes_at_once_lose_no_update(dest: str, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for src in (one, two):
        _tree(src)
    _push(dest, one)
    (one / "from-one").write_text("1")
    (one / "docs" / "a.txt").write_text("one wins")
    (two / "from-two").write_text("2")
    (two / "docs" / "a.txt").write_text("two loses")

    def other() -> None:
        _push(dest, two)

    pending: list[Callable[[], object]] = [other]
    hooks = StackHooks(wrappers=(lambda s: _racing(s, pending),))
    with stack_hooks(hooks):
        out = _push(dest, one)
    assert out.result.conflicts == 1
    entries = _manifest(dest)
    assert {b"from-one", b"from-two"} <= set(entries)
    assert _object(dest, b"docs/a.txt") == b"one wins"
    check = app.verify_mirror(_spec(dest), read_data=True).result
    assert check.problems == [] and check.generation == 3


def _fail_after(n: int) -> Callable[[Storage], Storage]:
    """Uploads of files fail after ``n`` of them (an interrupted push)."""
    counter = itertools.count()

    def wrap(store: Storage) -> Storage:
        faulty = FaultyStorage(store)
        faulty.fail(
            "put_object",
            lambda name: not name.startswith(".cairn-mirror") and next(counter) >= n,
            transient=False,
        )
        return faulty

    return wrap


def interrupted_then_resumed(url: str, src: Path) -> None:
    """Ten files, a push that fails after sending six, then a push that sends the other
    four only (for plain and encrypted mirrors)."""
    src.mkdir()
    for i in range(10):
        (src / f"f{i}").write_bytes(os.urandom(1000) + bytes([i]))
    hooks = StackHooks(wrappers=(_fail_after(6),))
    with stack_hooks(hooks), pytest.raises(StorageError):
        app.push_mirror(
            replace(_spec(url), store=StoreOptions(retries=1, connections=1)),
            app.PushRequest(source=str(src)),
        )
    out = _push(url, src)
    assert out.result.resumed == 6 and out.result.uploaded == 4


def test_an_interrupted_push_resumes_without_sending_again(tmp_path: Path) -> None:
    url = str(tmp_path / "mirror")
    app.init(app.MirrorSpec(url))
    interrupted_then_resumed(url, tmp_path / "src")
    assert app.verify_mirror(_spec(url), read_data=True).result.problems == []


def test_checkpoints_commit_during_a_long_push(tmp_path: Path) -> None:
    url = str(tmp_path / "mirror")
    app.init(app.MirrorSpec(url))
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(6):
        (src / "d" / f"f{i}").write_bytes(os.urandom(50_000))
    hooks = StackHooks(wrappers=(_fail_after(4),))
    with stack_hooks(hooks), pytest.raises(StorageError):
        app.push_mirror(
            replace(_spec(url), store=StoreOptions(retries=1, connections=1)),
            app.PushRequest(source=str(src), checkpoint_bytes=100_000),
        )
    committed = _manifest(url)  # two checkpoints of two files each, with their directory
    assert b"d" in committed and len([p for p in committed if p.startswith(b"d/")]) == 4
    out = _push(url, src)
    assert out.result.uploaded == 2 and len(_manifest(url)) == 7


def test_a_file_that_changes_before_it_goes_up_is_sent_as_it_is_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairn.ops.mirror import push as push_module

    url = str(tmp_path / "mirror")
    app.init(app.MirrorSpec(url))
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("as scanned")
    real = push_module.upload

    def changed_first(objects, root, item, **kw):  # type: ignore[no-untyped-def]
        (src / "f").write_text("as it is now, longer")
        return real(objects, root, item, **kw)

    monkeypatch.setattr(push_module, "upload", changed_first)
    out = _push(url, src)
    assert not out.result.unreadable
    assert _object(url, b"f") == b"as it is now, longer"
    assert app.verify_mirror(_spec(url), read_data=True).result.problems == []


def test_odd_names_get_keys_of_their_own(dest: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    odd = [b"caf\xe9", b"line\nbreak", b".cairn-mirror", b"x" * 250]
    for name in odd:
        with open(os.path.join(os.fsencode(src), name), "wb") as f:
            f.write(name)
    _push(dest, src)
    for name in odd:
        assert _object(dest, name) == name
    assert object_key(b"caf\xe9").startswith(".cairn-mirror/names/")


def test_verify_finds_an_object_changed_behind_the_manifest(tmp_path: Path) -> None:
    url = str(tmp_path / "mirror")
    app.init(app.MirrorSpec(url))
    src = tmp_path / "src"
    _tree(src)
    _push(url, src)
    assert app.verify_mirror(_spec(url), read_data=True).result.problems == []
    (tmp_path / "mirror" / "docs" / "a.txt").write_text("ALPHA\n")  # same size
    problems = app.verify_mirror(_spec(url), read_data=False).result.problems
    assert [p for p, _ in problems] == [b"docs/a.txt"] and "ETag" in problems[0][1]


def test_the_latest_hint_lags_a_little_and_readers_find_the_newest(
    dest: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src)
    (src / "many").mkdir()
    for i in range(200):  # deltas stay small beside the base: few compactions
        (src / "many" / f"file-{i:03d}.txt").write_text(f"{i}\n")
    opened = app.open_store(_spec(dest))
    lagging = 0
    for i in range(1, 21):
        (src / "counter").write_text(str(i))
        _push(dest, src)
        hint = int(opened.store.read(".cairn-mirror/latest"))
        assert i - 16 < hint <= i
        lagging += hint < i
        assert newest_head(opened.store).generation == i  # type: ignore[union-attr]
    assert lagging >= 10  # not rewritten by every push
    opened.store.stat(head_path(20))


def test_an_interrupted_large_file_resumes_from_its_last_part(tmp_path: Path, s3_url: str) -> None:
    app.init(app.MirrorSpec(s3_url))
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(70 << 20))  # 5 parts of 16 MiB
    parts = itertools.count()
    calls: list[FaultyStorage] = []

    def wrap(store: Storage) -> Storage:
        faulty = FaultyStorage(store)
        faulty.fail("upload_part", lambda _name: next(parts) >= 2, transient=False)
        calls.append(faulty)
        return faulty

    with stack_hooks(StackHooks(wrappers=(wrap,))), pytest.raises(StorageError):
        _push(s3_url, src)
    assert sum(f.calls["upload_part"] for f in calls) == 3  # two sent, the third refused
    counting: list[FaultyStorage] = []

    def count(store: Storage) -> Storage:
        counting.append(FaultyStorage(store))
        return counting[-1]

    with stack_hooks(StackHooks(wrappers=(count,))):
        out = _push(s3_url, src)
    assert counting[0].calls["upload_part"] == 3 and counting[0].calls["start_upload"] == 0
    assert out.result.uploaded == 1
    assert _object(s3_url, b"big.bin") == (src / "big.bin").read_bytes()


def _forget_state(tmp_path: Path) -> None:
    """The local state lost (a new machine, a wiped cache)."""
    from cairn.app.cachedirs import cache_base

    shutil.rmtree(cache_base() / "mirror")


def test_reconcile_adopts_what_an_interrupted_push_sent_before_its_state_was_lost(
    dest: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(os.urandom(3000) + bytes([i]))
    (src / "big.bin").write_bytes(os.urandom(70 << 20) if "s3:" in dest else os.urandom(1 << 20))
    failing = FaultyStorage  # the commit fails: every object is sent, none is committed

    def wrap(store: Storage) -> Storage:
        faulty = failing(store)
        faulty.fail("create", ".cairn-mirror/heads/", transient=False)
        return faulty

    with stack_hooks(StackHooks(wrappers=(wrap,))), pytest.raises(StorageError):
        _push(dest, src)
    _forget_state(tmp_path)
    (src / "f0").write_bytes(b"changed since")  # same key, other content: sent again
    out = _push(dest, src, reconcile=True)
    rec = out.result.reconciled
    assert rec is not None and sorted(rec.adopted) == [
        b"big.bin",
        *(b"f%d" % i for i in range(1, 6)),
    ]
    assert out.result.uploaded == 1 and out.usage.get("bytes_up", 0) < 100_000
    assert app.verify_mirror(_spec(dest), read_data=True).result.problems == []


def test_reconcile_sends_again_what_was_changed_or_deleted_behind_the_manifest(
    dest: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src)
    _push(dest, src)
    opened = app.open_store(_spec(dest))
    assert opened.objects is not None
    opened.objects.put("docs/a.txt", b"tampered", content_type="text/plain")
    opened.store.delete("docs/b.html")
    plain = _push(dest, src)  # trusting the manifest, a push sees nothing to do
    assert plain.result.uploaded == 0
    out = _push(dest, src, reconcile=True)
    rec = out.result.reconciled
    assert rec is not None and rec.changed == [b"docs/a.txt"] and rec.missing == [b"docs/b.html"]
    assert out.result.uploaded == 2  # (S3: the same bytes, the same ETag: nothing to commit)
    assert _object(dest, b"docs/a.txt") == b"alpha\n"
    assert app.verify_mirror(_spec(dest), read_data=True).result.problems == []


def test_a_compacting_push_aborts_uploads_in_parts_no_push_will_resume(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from cairn.ops.mirror.piececache import CachedPieces
    from cairn.ops.mirror.push import PushOptions, push
    from cairn.ops.mirror.state import MirrorState
    from cairn.storage.memory import MemoryStorage
    from cairn.storage.objects import Multipart

    old = datetime.now(UTC) - timedelta(days=3)
    store = MemoryStorage(multipart=Multipart(5 << 20, 5 << 20), now=lambda: old)
    objects = store.objects
    assert objects is not None
    objects.create(".cairn-mirror/mirror", b'{"format": "cairn-mirror", "version": 1}')
    stale = objects.start_upload("left/behind", content_type="text/plain")
    src = tmp_path / "src"
    _tree(src)
    opts = PushOptions(host="h", created=lambda: "2026-12-06T00:00:00+00:00")
    with MirrorState(tmp_path / "state.sqlite") as state:
        state.journal(b"h" * 32).started("kept/resumable", "resumable-id")
        mine = objects.start_upload("kept/resumable", content_type="text/plain")
        state.journal(b"h" * 32).started("kept/resumable", mine)
        push(store, objects, os.fsencode(src), state, CachedPieces(store, None), opts)
        (src / "docs" / "a.txt").write_text("changed")  # a tiny manifest: every push compacts
        push(store, objects, os.fsencode(src), state, CachedPieces(store, None), opts)
    left = {u.upload_id for u in objects.uploads("")}
    assert stale not in left and mine in left


def test_status_counts_the_requests_a_push_then_makes(tmp_path: Path, s3_url: str) -> None:
    app.init(app.MirrorSpec(s3_url))
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(70 << 20))  # 5 parts of 16 MiB
    (src / "small.txt").write_text("s")
    planned = app.status(_spec(s3_url), app.PushRequest(source=str(src)))
    assert planned.estimate is not None
    done = _push(s3_url, src)
    assert planned.estimate["requests"]["put"] == done.usage["put"] == (5 + 2) + 1 + 3
