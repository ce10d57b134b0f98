"""The push's hashed source (cairn.ops.mirror.source): an unchanged file is not read again,
``checksum`` reads all, and what cannot be read keeps its committed entries."""

from __future__ import annotations

import os
from pathlib import Path

import blake3

from cairn.ops.mirror.manifest import Entry
from cairn.ops.mirror.scan import Unreadable
from cairn.ops.mirror.source import Source, keep_unreadable, read_source
from cairn.ops.mirror.state import MirrorState


def _tree(root: Path) -> None:
    (root / "d").mkdir(parents=True)
    for i in range(6):
        (root / "d" / f"f{i}").write_bytes(b"%d" % i * 1000)
    (root / "top").write_bytes(b"top")


def test_only_changed_files_are_read(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    with MirrorState(tmp_path / "state.sqlite") as state:
        first = read_source(bytes(src), state, workers=3, checksum=False)
        assert (first.files_read, first.unreadable) == (7, [])
        assert first.entries[b"d/f2"].hash == blake3.blake3(b"2" * 1000).digest()
        state.update(first.scanned.values(), [])
        again = read_source(bytes(src), state, workers=3, checksum=False)
        assert again.files_read == 0
        assert again.entries == first.entries
        (src / "d" / "f2").write_bytes(b"changed")
        changed = read_source(bytes(src), state, workers=3, checksum=False)
        assert (changed.files_read, changed.bytes_read) == (1, 7)
        assert changed.entries[b"d/f2"].hash == blake3.blake3(b"changed").digest()
        every = read_source(bytes(src), state, workers=2, checksum=True)
        assert every.files_read == 7


def test_what_cannot_be_read_keeps_its_committed_entries() -> None:
    old = {
        b"d": Entry(b"d", "dir", 0o755, 0, 0, 0),
        b"d/x": Entry(b"d/x", "file", 0o644, 0, 0, 0, hash=bytes(32)),
        b"dd": Entry(b"dd", "file", 0o644, 0, 0, 0, hash=bytes(32)),
        b"f": Entry(b"f", "file", 0o644, 0, 0, 0, hash=b"\x01" * 32),
    }
    source = Source(entries={b"d": old[b"d"]}, unreadable=[Unreadable(b"d", "denied")])
    keep_unreadable(old, source)
    assert sorted(source.entries) == [b"d", b"d/x"]  # not dd: only what lies below d
    source.unreadable.append(Unreadable(b"f", "changed while it was read"))
    keep_unreadable(old, source)
    assert source.entries[b"f"] is old[b"f"]


def test_a_fifo_in_place_of_a_file_is_not_opened(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    with MirrorState(tmp_path / "state.sqlite") as state:
        fifo_over_file = src / "d" / "f3"  # a read would block forever
        items = read_source(bytes(src), state, workers=1, checksum=False)
        assert b"d/f3" in items.entries
        os.unlink(fifo_over_file)
        os.mkfifo(fifo_over_file)  # a fifo where the file was: never opened for reading
        state.update([], [b"d/f3"])
        again = read_source(bytes(src), state, workers=1, checksum=False)
        assert again.entries[b"d/f3"].type == "fifo"
