"""Where the benchmark restores: a fresh ext4 file system each time, or the work directory.

On a file system without a journal (the root file system of this project's reference machine
is one), ext4 skips every inode freed in the last one to six minutes when it allocates a new
one, and looks each up in its buffer cache to find out: a restore that follows the deletion of
tens of thousands of files spends most of its time there (the same 1 GiB restore took 2.9 s and
8.9 s), whatever the tool. A fresh, journaled ext4 (mkfs's defaults, as most machines have)
mounted from an image file takes that history out of the measurement.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

FRESH = "fresh-ext4"
WORKDIR = "workdir"


@contextlib.contextmanager
def restore_volume(work: Path, kind: str, size: int) -> Iterator[Path]:
    """A directory to restore into, for one restore: ``size`` bytes of room at least."""
    if kind == WORKDIR:
        yield work
        return
    image = work / "restore.img"
    mount = work / "restore-fs"
    mount.mkdir(exist_ok=True)
    if mount.is_mount():  # left behind by an interrupted run
        subprocess.run(["umount", str(mount)], check=True)
    with open(image, "wb") as f:
        f.truncate(size)  # sparse: only what is written takes room
    try:
        for cmd in (
            ["mkfs.ext4", "-q", "-F", str(image)],
            ["mount", "-o", "loop", str(image), str(mount)],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(
                    f"cannot make the restore file system ({' '.join(cmd)}: "
                    f"{proc.stderr.strip() or proc.returncode}); run as root, or pass "
                    f"--restore-on {WORKDIR}"
                )
        try:
            yield mount
        finally:
            os.sync()
            subprocess.run(["umount", str(mount)], check=True)
    finally:
        image.unlink(missing_ok=True)
