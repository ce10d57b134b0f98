"""Counts what a backup will read, on a thread of its own, so its progress has a total.

It walks the same paths as the archiver, with the same excludes and the same rule for other
file systems, and reads only metadata (directory listings and the status of files): regular
files (a file with several paths once) and the size of every path, as the backup reports them
and as its summary counts them. The total
grows as the count goes (``Progress.total``), and is final once the walk is done. Like
restic's scanner it is only an estimate of what the backup will find: files may come and go
meanwhile.
"""

from __future__ import annotations

import os
import stat
import threading

from cairn.model.hardlinks import link_key
from cairn.ops.backup.archiver import BackupOptions
from cairn.ops.backup.file_saver import open_dir_for_reading
from cairn.ops.progress import Progress


class Scanner:
    def __init__(self, paths: list[bytes], options: BackupOptions) -> None:
        """Counts ``paths`` as the backup with ``options`` reads them: its excludes (case or
        not), --exclude-larger-than and --one-file-system (not --exclude-if-present's tags:
        their directories are counted whole)."""
        self.paths = _outermost(paths)
        self.excludes = options.excludes
        self.iexcludes = options.iexcludes
        self.larger_than = options.exclude_larger_than
        self.one_file_system = options.one_file_system
        self.files = 0
        self.bytes = 0
        self._links: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, report: Progress | None = None) -> tuple[int, int]:
        """Walks the paths: (files, bytes); ``report`` is told the count as it grows."""
        for path in self.paths:
            if self._stop.is_set():
                break
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                self._walk(path, st.st_dev, report)
            else:
                self._add(st)
        if report is not None and not self._stop.is_set():
            report.total(self.files, self.bytes, complete=True)
        return self.files, self.bytes

    def start(self, report: Progress) -> None:
        """Counts on a daemon thread, reporting to ``report``."""
        self._thread = threading.Thread(
            target=self.count, args=(report,), name="cairn-scan", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Ends the count (the backup is over) and waits for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _walk(self, top: bytes, root_dev: int, report: Progress | None) -> None:
        stack = [top]
        while stack and not self._stop.is_set():
            path = stack.pop()
            try:
                fd = open_dir_for_reading(path)  # as the archiver: the atime left as it is
            except OSError:
                continue
            try:
                self._list(fd, path.rstrip(b"/") + b"/", root_dev, stack)
            finally:
                os.close(fd)
            if report is not None:
                report.total(self.files, self.bytes, complete=False)

    def _list(self, fd: int, prefix: bytes, root_dev: int, stack: list[bytes]) -> None:
        """Counts the files of the directory open as ``fd``; its subdirectories go on
        ``stack``. The entries are looked at while ``fd`` is open (their status is read
        relative to it). Kept lean: it runs once per entry, beside the backup's own walk."""
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError:
            return
        matchers = [m for m in (self.excludes, self.iexcludes) if m]
        larger_than = self.larger_than
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    if matchers and any(
                        m.matches(prefix + os.fsencode(entry.name)) for m in matchers
                    ):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if larger_than is not None and st.st_size > larger_than:
                        continue
                    self.bytes += st.st_size
                    if st.st_nlink > 1 and self._linked(st):
                        continue
                    self.files += 1
                elif entry.is_dir(follow_symlinks=False):
                    child = prefix + os.fsencode(entry.name)
                    if matchers and any(m.matches(child) for m in matchers):
                        continue
                    if self._elsewhere(entry, root_dev):
                        continue  # the mount point is backed up, not what is below
                    stack.append(child)
            except OSError:
                continue

    def _elsewhere(self, entry: os.DirEntry[str], root_dev: int) -> bool:
        """A directory on another file system, with --one-file-system."""
        return self.one_file_system and entry.stat(follow_symlinks=False).st_dev != root_dev

    def _linked(self, st: os.stat_result) -> bool:
        """A later path of a file with several: its bytes count, not the file again."""
        group = link_key(st.st_dev, st.st_ino, st.st_nlink)
        if group is None:
            return False
        if group in self._links:
            return True
        self._links.add(group)
        return False

    def _add(self, st: os.stat_result) -> None:
        """A path given to back up (not a directory)."""
        if stat.S_ISREG(st.st_mode):
            self.bytes += st.st_size
            if not self._linked(st):
                self.files += 1


def _outermost(paths: list[bytes]) -> list[bytes]:
    """The paths, without those inside another (the archiver walks each once)."""
    kept: list[bytes] = []
    for path in sorted(set(paths), key=len):
        if not any(path == k or path.startswith(k.rstrip(b"/") + b"/") for k in kept):
            kept.append(path)
    return kept
