"""Builds a small sample tree with the kinds of entries backups must keep."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path


def main(root: Path) -> None:
    rnd = random.Random(7)
    (root / "notes").mkdir(parents=True)
    (root / "photos").mkdir()
    (root / "empty-dir").mkdir()
    for i in range(200):
        words = " ".join(rnd.choice(["alpha", "beta", "gamma", "delta", "cairn"]) for _ in range(200))
        (root / "notes" / f"note-{i:03}.txt").write_text(words + "\n")
    (root / "notes" / "todo.txt").write_text("back up everything\n")
    for i in range(3):
        (root / "photos" / f"IMG_{i}.jpg").write_bytes(rnd.randbytes(3 << 20))
    (root / "photos" / "copy-of-IMG_0.jpg").write_bytes((root / "photos" / "IMG_0.jpg").read_bytes())
    (root / "empty.txt").touch()
    os.symlink("notes/todo.txt", root / "todo-link")
    os.symlink("../nowhere", root / "dangling-link")
    os.link(root / "notes" / "todo.txt", root / "todo-hardlink")
    (root / os.fsdecode(b"caf\xe9-latin1-name.txt")).write_text("a name that is not UTF-8\n")
    with open(root / "sparse.img", "wb") as f:
        f.write(b"start")
        f.seek(64 << 20)
        f.write(b"end")
    os.chmod(root / "notes" / "todo.txt", 0o640)
    os.mkfifo(root / "a-fifo")
    try:
        os.setxattr(root / "empty.txt", "user.comment", b"kept by cairn")
    except OSError:
        pass
    os.utime(root / "empty.txt", ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
