"""A push's local state (docs/mirror.md §7): a file is trusted unread only while its size,
times, inode and device are as they were; uploads are kept until a commit; another schema is a
fresh start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cairn.ops.mirror.manifest import Entry
from cairn.ops.mirror.scan import Scanned
from cairn.ops.mirror.state import MirrorState


def _item(path: bytes = b"a", **change: int) -> Scanned:
    entry = Entry(path, "file", 0o644, 0, 0, change.pop("mtime", 10), size=change.pop("size", 5))
    entry.hash = b"\x01" * 32
    fields = {"inode": 7, "dev": 1, "ctime": 20, **change}
    return Scanned(entry, **fields)


def test_a_file_is_trusted_only_as_it_was(tmp_path: Path) -> None:
    with MirrorState(tmp_path / "state" / "s.sqlite") as state:
        state.update([_item(), _item(b"b")], [])
        assert state.known_hash(_item()) == b"\x01" * 32
        for changed in ({"size": 6}, {"mtime": 11}, {"ctime": 21}, {"inode": 8}, {"dev": 2}):
            assert state.known_hash(_item(**changed)) is None, changed
        assert state.known_hash(_item(b"new")) is None
        state.update([], [b"b"])
        assert sorted(state.paths()) == [b"a"]
    with MirrorState(tmp_path / "state" / "s.sqlite") as state:  # kept across runs
        assert state.known_hash(_item()) == b"\x01" * 32


def test_uploads_wait_for_a_commit(tmp_path: Path) -> None:
    with MirrorState(tmp_path / "s.sqlite") as state:
        assert state.head() is None
        state.uploaded(b"a", b"\x02" * 32, '"etag"')
    with MirrorState(tmp_path / "s.sqlite") as state:  # an interrupted push finds them
        assert state.uploads() == {b"a": (b"\x02" * 32, '"etag"')}
        state.committed(b'{"generation":1}')
        assert state.uploads() == {}
        assert state.head() == b'{"generation":1}'


def test_an_update_is_all_or_nothing(tmp_path: Path) -> None:
    with MirrorState(tmp_path / "s.sqlite") as state:
        state.update([_item()], [])
        bad = _item(b"b")
        bad.entry.size = object()  # type: ignore[assignment]  # sqlite cannot store it
        with pytest.raises(sqlite3.Error):
            state.update([_item(b"c"), bad], [b"a"])
        assert sorted(state.paths()) == [b"a"]


def test_another_schema_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with MirrorState(path) as state:
        state.update([_item()], [])
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with MirrorState(path) as state:
        assert state.known_hash(_item()) is None


def test_an_upload_is_recorded_for_the_next_push_even_if_this_one_never_closes(
    tmp_path: Path,
) -> None:
    """The state is written ahead and synced at checkpoints only (a sync per uploaded file
    cost more than a small upload): what a push recorded is there for the next one even when
    the first dies without closing its state."""
    path = tmp_path / "s.sqlite"
    dying = MirrorState(path)
    dying.uploaded(b"a", b"\x02" * 32, '"etag"')
    with MirrorState(path) as state:
        assert state.uploads() == {b"a": (b"\x02" * 32, '"etag"')}
        mode = state._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    dying.close()
