"""A tree walker that captures everything cairn promises to restore, for comparisons.

It reads with O_NOATIME (files and directories), so describing a tree does not change the
access times it is about to compare.

Access times need care: cairn restores the atimes the backup recorded, and a source's atimes
do not stay what they were. On a relatime mount any program that lists a directory or reads a
file after it changed (every freshly made tree) moves its atime, so the source described after
a backup and a restore may differ from what was backed up, through no fault of cairn's. Compare
a restore with a description taken before the backup, or use tests.verify.restored_diff, which
compares atimes with the snapshot's record and everything else with the source.
"""

from __future__ import annotations

import os
import stat

_NOATIME = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0)
FIELDS = (
    "type",
    "mode",
    "uid",
    "gid",
    "size",
    "mtime",
    "atime",
    "content",
    "rdev",
    "xattrs",
    "link",
)


def _xattrs(path: bytes) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for n in names:
        try:
            out.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError:
            pass
    return tuple(sorted(out))


def _read(path: bytes) -> bytes:
    fd = os.open(path, _NOATIME)
    try:
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def _entry(
    p: bytes, st: os.stat_result, inodes: dict[tuple[int, int], bytes], rel: bytes, atime: bool
) -> tuple:  # type: ignore[type-arg]
    mode = st.st_mode
    data: bytes | None = None
    link_group = None
    if stat.S_ISREG(mode):
        data = _read(p)
        if st.st_nlink > 1:
            link_group = inodes.setdefault((st.st_dev, st.st_ino), rel)
    elif stat.S_ISLNK(mode):
        data = os.readlink(p)
    return (
        stat.S_IFMT(mode),
        None if stat.S_ISLNK(mode) else stat.S_IMODE(mode),
        st.st_uid,
        st.st_gid,
        None if stat.S_ISDIR(mode) else st.st_size,
        st.st_mtime_ns,
        st.st_atime_ns if atime and not stat.S_ISLNK(mode) else None,
        data,
        st.st_rdev if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) else 0,
        _xattrs(p),
        link_group,
    )


def describe(root: str | os.PathLike[str], *, atime: bool = True) -> dict[bytes, tuple]:  # type: ignore[type-arg]
    """relative path (bytes) -> (type, mode, uid, gid, size, mtime_ns, atime_ns, content or
    link target, rdev, xattrs, hardlink group), for everything below ``root``."""
    root_b = os.fsencode(os.fspath(root))
    out: dict[bytes, tuple] = {}  # type: ignore[type-arg]
    inodes: dict[tuple[int, int], bytes] = {}

    def walk(dir_path: bytes, rel: bytes) -> None:
        fd = os.open(dir_path, _NOATIME | os.O_DIRECTORY)
        try:
            names = sorted(os.fsencode(e.name) for e in os.scandir(fd))
        finally:
            os.close(fd)
        stats = {n: os.lstat(dir_path + b"/" + n) for n in names}
        for n in names:
            p, r = dir_path + b"/" + n, (rel + b"/" + n if rel else n)
            out[r] = _entry(p, stats[n], inodes, r, atime)
            if stat.S_ISDIR(stats[n].st_mode):
                walk(p, r)

    walk(root_b, b"")
    return out


def diff(a: dict[bytes, tuple], b: dict[bytes, tuple]) -> list[str]:  # type: ignore[type-arg]
    """Human-readable differences (empty when identical)."""
    problems = []
    for k in sorted(set(a) | set(b)):
        if k not in a:
            problems.append(f"extra: {k!r}")
        elif k not in b:
            problems.append(f"missing: {k!r}")
        else:
            for f, x, y in zip(FIELDS, a[k], b[k], strict=True):
                if x != y:
                    shown = (x, y) if f != "content" else ("<differs>",)
                    problems.append(f"{k!r}: {f} {shown}")
    return problems


def atimes(desc: dict[bytes, tuple]) -> dict[bytes, int]:  # type: ignore[type-arg]
    """relative path -> atime of every entry that has one in a description (not symlinks)."""
    return {path: entry[6] for path, entry in desc.items() if entry[6] is not None}


def read_like_any_program(root: str | os.PathLike[str]) -> None:
    """Lists every directory and reads every file below ``root`` the ordinary way (no
    O_NOATIME), as a file manager, an indexer or a shell's completion may at any time."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                with open(path, "rb") as f:
                    f.read(1)
