"""Reading a tree's inodes ahead of the walk, in a process of its own.

A backup of a tree whose files are unchanged reads little but metadata: a directory listing and
an ``lstat`` per entry. When the inodes are not in memory (the machine's first backup of the
day, after the page cache has been given to other work), each ``lstat`` waits for the disk, one
at a time, and that wait adds to the walk's own work instead of overlapping it: a million tiny
files took 10.8 s of ``lstat`` alone from a cold cache here, whether one thread or eight asked
(the disk here served one request at a time), against about 12 s for the whole backup when
warm.

So a re-backup starts a process that walks the same paths in the same order (entries sorted
by name, depth first, excluded paths left out, other file systems too with
``--one-file-system``) and does nothing but list and ``lstat``: the disk's waits move there, to
run while the backup loads its index and does its work per entry, and the backup's own
``lstat`` find the inodes in memory. A process, not a thread: threads that both make a system
call per entry trade the interpreter's lock at every call (see archiver.py). It opens
directories as the walk does, without moving their access time where allowed (a directory's
access time is in its listing's digest, ops/backup/reuse.py), reads no file, and is stopped
when the backup ends (it has most often ended before); it stops by itself if the backup's
process is gone.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator

from cairn.core.fsread import open_dir_for_reading
from cairn.ops.filter_patterns import PatternList


class Prefetch:
    """The process reading a tree's inodes ahead of the walk (``start``)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def stop(self) -> None:
        """Ends the process, done or not."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def start(
    paths: list[bytes],
    excludes: PatternList,
    iexcludes: PatternList,
    one_file_system: bool,
) -> Prefetch | None:
    """Starts the process for ``paths`` (absolute); None if it cannot be started (nothing is
    lost but the head start)."""
    spec = {
        "paths": [os.fsdecode(p) for p in paths],
        "excludes": excludes.patterns,
        "iexcludes": iexcludes.patterns,
        "one_file_system": one_file_system,
        "parent": os.getpid(),
    }
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
    except OSError:
        return None
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
    except OSError:
        pass  # it ended already
    return Prefetch(proc)


def walk(
    paths: list[bytes],
    excludes: PatternList,
    iexcludes: PatternList,
    one_file_system: bool,
    parent: int | None = None,
) -> Iterator[bytes]:
    """Lists and ``lstat``s everything below ``paths`` in the backup's walk order; yields each
    directory as it is entered. A directory whose inodes are in memory already (``_in_memory``)
    has only its subdirectories looked at. Stops when the process ``parent`` is no longer its
    parent. Errors are the walk's to report: an entry that cannot be read is passed over."""
    any_excludes = bool(excludes or iexcludes)
    for top in sorted(set(paths)):
        try:
            st = os.lstat(top)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        root_dev = st.st_dev
        stack: list[_Listing] = []
        opened = _enter(top, None, top)
        if opened is None:
            continue
        yield top
        stack.append(opened)
        while stack:
            prefix, fd, entries, warm = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                os.close(fd)
                continue
            raw, is_dir = entry
            if warm and not is_dir:
                continue
            path = prefix + raw
            if any_excludes and (excludes.matches(path) or iexcludes.matches(path)):
                continue
            try:
                st = os.stat(raw, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode) or (one_file_system and st.st_dev != root_dev):
                continue
            if parent is not None and os.getppid() != parent:
                for listing in stack:
                    os.close(listing[1])
                return  # the backup is gone
            opened = _enter(raw, fd, path)
            if opened is not None:
                yield path
                stack.append(opened)


# a directory: its path ending in '/', its descriptor, its entries (name, whether a directory)
# in the walk's order, and whether its inodes are in memory already
_Listing = tuple[bytes, int, Iterator[tuple[bytes, bool]], bool]
# an ``lstat`` that took longer than this read from the disk (one from memory takes 1 to 2 us)
SLOW_NS = 50_000


def _enter(name: bytes, dir_fd: int | None, path: bytes) -> _Listing | None:
    try:
        fd = open_dir_for_reading(name, dir_fd)
    except OSError:
        return None
    try:
        with os.scandir(fd) as it:
            # sorted as the walk sorts them; the type from the listing where the file system
            # gives it (no lstat)
            listed = sorted(it, key=lambda e: e.name)
            entries = [(os.fsencode(e.name), _is_dir(e)) for e in listed]
    except OSError:
        os.close(fd)
        return None
    return path.rstrip(b"/") + b"/", fd, iter(entries), _in_memory(entries, fd)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return True  # looked at with lstat


def _in_memory(entries: list[tuple[bytes, bool]], fd: int) -> bool:
    """Whether a directory's inodes look to be in memory already: the first, middle and last
    entries' ``lstat`` each returned at once. Then the rest is left alone: on a warm cache
    this process would only spend the CPU the backup needs (the ``lstat`` of a million files)."""
    if len(entries) < 8:
        return False
    for i in (0, len(entries) // 2, len(entries) - 1):
        t = time.perf_counter_ns()
        try:
            os.stat(entries[i][0], dir_fd=fd, follow_symlinks=False)
        except OSError:
            return False
        if time.perf_counter_ns() - t > SLOW_NS:
            return False
    return True


def main() -> int:
    spec = json.loads(sys.stdin.buffer.read() or b"{}")
    paths = [os.fsencode(p) for p in spec.get("paths", [])]
    for _ in walk(
        paths,
        PatternList(spec.get("excludes", [])),
        PatternList(spec.get("iexcludes", []), ignore_case=True),
        bool(spec.get("one_file_system")),
        spec.get("parent"),
    ):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
