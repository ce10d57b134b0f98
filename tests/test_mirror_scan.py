"""The push's view of its source (cairn.ops.mirror.scan): every entry with its metadata, hard
links grouped, unreadable entries named, contents hashed, a changed file never hashed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

from cairn.ops.mirror.scan import FileChanged, Scanned, hash_file, scan
from tests.conftest import NOBODY
from tests.test_faults import _chown_tree


def _tree(root: Path) -> None:
    (root / "d" / "e").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "d" / "e" / "deep").write_bytes(b"x" * 3000)
    os.link(root / "a.txt", root / "d" / "hard")
    os.symlink(b"../a.txt", bytes(root / "d") + b"/link")
    os.mkfifo(root / "fifo")
    (root / "caf\xe9".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(b"")
    os.chmod(root / "a.txt", 0o4750)
    os.utime(root / "d" / "e" / "deep", ns=(1, 1_234_567_891_234_567_891))
    try:
        os.setxattr(root / "a.txt", "user.colour", b"blue")
    except OSError:
        pass


def test_every_entry_with_its_metadata(tmp_path: Path) -> None:
    _tree(tmp_path)
    items = list(scan(bytes(tmp_path)))
    assert all(isinstance(i, Scanned) for i in items)
    entries = {i.entry.path: i.entry for i in items if isinstance(i, Scanned)}
    assert sorted(entries) == sorted(
        [b"a.txt", b"caf\xe9", b"d", b"d/e", b"d/e/deep", b"d/hard", b"d/link", b"fifo"]
    )
    paths = [i.entry.path for i in items if isinstance(i, Scanned)]
    assert paths.index(b"d") < paths.index(b"d/e") < paths.index(b"d/e/deep")
    a = entries[b"a.txt"]
    assert (a.type, a.mode, a.size) == ("file", 0o4750, 5)
    assert a.link and a.link == entries[b"d/hard"].link
    assert not entries[b"d/e/deep"].link
    assert entries[b"d/e/deep"].mtime == 1_234_567_891_234_567_891
    assert entries[b"d/link"].type == "symlink"
    assert entries[b"d/link"].target == b"../a.txt"
    assert entries[b"fifo"].type == "fifo"
    assert entries[b"d"].type == "dir"
    if _has_xattrs(tmp_path):
        assert a.xattrs == [(b"user.colour", b"blue")]


def _has_xattrs(root: Path) -> bool:
    try:
        return bool(os.listxattr(root / "a.txt"))
    except OSError:
        return False


_LIST_UNREADABLE = """
import sys
from cairn.ops.mirror.scan import Scanned, Unreadable, scan
for item in scan(sys.argv[1].encode()):
    if isinstance(item, Unreadable):
        print("unreadable", item.path.decode(), item.error, sep="\t")
    elif isinstance(item, Scanned):
        print("scanned", item.entry.path.decode(errors="replace"), sep="\t")
"""


def test_an_unreadable_directory_is_named_and_the_rest_scanned(unprivileged_base: Path) -> None:
    """Scanned as 'nobody' when the tests run as root (root reads every directory)."""
    root = unprivileged_base / "src"
    root.mkdir()
    _tree(root)
    locked = root / "d" / "e"
    if os.geteuid() == 0:
        _chown_tree(root, NOBODY, NOBODY)
        os.chown(locked, 0, 0)  # so 'nobody' cannot give itself the permission back
    os.chmod(locked, 0)
    try:
        cmd = [sys.executable, "-c", _LIST_UNREADABLE, os.fspath(root)]
        if os.geteuid() == 0:
            cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", check=False)
    finally:
        os.chmod(locked, 0o755)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [r[1:] for r in rows if r[0] == "unreadable"] == [["d/e", "Permission denied"]]
    assert ["scanned", "d/link"] in rows


def test_hash_and_a_file_that_changed(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"content" * 1000)
    st = f.stat()
    assert (
        hash_file(bytes(f), st.st_size, st.st_mtime_ns) == blake3.blake3(b"content" * 1000).digest()
    )
    f.write_bytes(b"other")
    with pytest.raises(FileChanged, match="changed since it was scanned"):
        hash_file(bytes(f), st.st_size, st.st_mtime_ns)
    os.symlink(f, tmp_path / "l")
    with pytest.raises(OSError):
        hash_file(bytes(tmp_path / "l"), 5, f.stat().st_mtime_ns)
