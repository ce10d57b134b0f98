"""Counts what a backup will read, beside it, so its progress has a total.

It walks the same paths as the archiver, with the same excludes and the same rule for other
file systems, and reads only metadata (directory listings and the status of files): regular
files (a file with several paths once) and the size of every path, as the backup reports them
and as its summary counts them. The total
grows as the count goes (``Progress.total``), and is final once the walk is done. Like
restic's scanner it is only an estimate of what the backup will find: files may come and go
meanwhile.

``start`` counts in a child process (ops/backup/scan_child.py, started afresh, not forked:
the backup has threads), so that the count runs on another core and never holds the backup's
GIL; a thread here reads the running count it writes as lines and hands it on. Where the
child cannot be started, the thread counts itself. The total is only for progress: a child
that fails or writes nonsense ends the count, never the backup.
"""

from __future__ import annotations

import os
import stat
import sys
import threading

from cairn.core.fsread import open_dir_for_reading
from cairn.model.linkkey import link_key

TYPE_CHECKING = False  # not typing's: the child process does without importing it
if TYPE_CHECKING:
    import subprocess
    from typing import Protocol

    from cairn.ops.backup.archiver import BackupOptions

    class Matcher(Protocol):
        def __bool__(self) -> bool: ...

        def matches(self, path: bytes) -> bool: ...

    class Totals(Protocol):
        def total(
            self, files: int, nbytes: int, complete: bool, estimated: bool = False
        ) -> None: ...


CHILD_MODULE = "cairn.ops.backup.scan_child"


class Settings:
    """What the count takes of a backup's options (``BackupOptions`` has these too): what the
    child process is given."""

    __slots__ = ("exclude_larger_than", "excludes", "iexcludes", "one_file_system")

    def __init__(
        self,
        excludes: Matcher | None,
        iexcludes: Matcher | None,
        exclude_larger_than: int | None,
        one_file_system: bool,
    ) -> None:
        self.excludes = excludes
        self.iexcludes = iexcludes
        self.exclude_larger_than = exclude_larger_than
        self.one_file_system = one_file_system


class Scanner:
    def __init__(self, paths: list[bytes], options: BackupOptions | Settings) -> None:
        """Counts ``paths`` as the backup with ``options`` (its ``BackupOptions``, or
        ``Settings``) reads them: its excludes (case or not), --exclude-larger-than and
        --one-file-system (not --exclude-if-present's tags: their directories are counted
        whole)."""
        self.paths = _outermost(paths)
        self.excludes: Matcher | None = options.excludes
        self.iexcludes: Matcher | None = options.iexcludes
        self.larger_than: int | None = options.exclude_larger_than
        self.one_file_system: bool = options.one_file_system
        self.files = 0
        self.bytes = 0
        self._links: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the child, against a stop while it is started
        self._child: subprocess.Popen[bytes] | None = None
        self.counted_by: str | None = None  # "child" or "thread", once started
        self.complete = False  # the final total was reported

    def count(self, report: Totals | None = None) -> tuple[int, int]:
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
            self.complete = True
        return self.files, self.bytes

    def settings(self) -> Settings:
        """What a count of the same paths elsewhere needs (empty excludes as None)."""
        return Settings(
            self.excludes or None, self.iexcludes or None, self.larger_than, self.one_file_system
        )

    def start(self, report: Totals) -> None:
        """Counts in a child process (on this thread, where it cannot be started), from a
        daemon thread that reports to ``report``."""
        self._thread = threading.Thread(
            target=self._run, args=(report,), name="cairn-scan", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Ends the count (the backup is over, or failed): the child is ended and waited for,
        the thread joined."""
        self._stop.set()
        with self._lock:
            child = self._child
        if child is not None:
            _end(child)
        if self._thread is not None:
            self._thread.join()
        if child is not None:
            for pipe in (child.stdin, child.stdout):
                try:
                    if pipe is not None:
                        pipe.close()
                except OSError:
                    pass  # work the child never read

    def finish(self, report: Totals, files: int, nbytes: int) -> None:
        """The backup has walked everything: the count ends, and if it was started and gave no
        final total (a backup over before the child had counted, or a child that failed),
        the ``files`` and ``nbytes`` the backup walked are the total, so that its last line
        has one."""
        started = self._thread is not None
        self.stop()
        if started and not self.complete:
            report.total(files, nbytes, complete=True)

    def _run(self, report: Totals) -> None:
        try:
            child = self._spawn()
        except Exception:  # no child (no interpreter, no process left, an option that
            child = None  # cannot be sent): the count is done here instead
        if child is None:
            if not self._stop.is_set():
                self.counted_by = "thread"
                self.count(report)
            return
        self.counted_by = "child"
        try:
            self._relay(child, report)
        except Exception:
            pass  # the total is only for progress

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        """The child, given its work, or None if the count was stopped meanwhile."""
        import pickle
        import subprocess

        work = pickle.dumps((self.paths, self.settings()), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self._stop.is_set():
                return None
            self._child = subprocess.Popen(
                [sys.executable, "-P", "-m", CHILD_MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_child_env(),
                # not in the terminal's process group: Ctrl-C is the backup's to handle
                start_new_session=True,
            )
        assert self._child.stdin is not None
        try:
            # stdin stays open: the child ends when it closes (this process is gone)
            self._child.stdin.write(work)
            self._child.stdin.flush()
        except OSError:
            pass  # the child is gone already: no total
        return self._child

    def _relay(self, child: subprocess.Popen[bytes], report: Totals) -> None:
        """Hands the child's counts on to ``report`` until the final one, or its end."""
        assert child.stdout is not None
        for line in child.stdout:
            count = parse_count(line)
            if count is None:
                continue
            if self._stop.is_set():
                break
            self.files, self.bytes, complete = count
            report.total(self.files, self.bytes, complete=complete)
            if complete:
                self.complete = True
                break
        if not self._stop.is_set():
            child.wait()  # it ends once its final count is written: no zombie meanwhile

    def _walk(self, top: bytes, root_dev: int, report: Totals | None) -> None:
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


def format_count(files: int, nbytes: int, complete: bool) -> bytes:
    """A line of the child's output: its running count, and whether it is final."""
    return b"%d %d %d\n" % (files, nbytes, complete)


def parse_count(line: bytes) -> tuple[int, int, bool] | None:
    """(files, bytes, complete) of a line of ``format_count``; None for anything else."""
    parts = line.split()
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[2] not in (b"0", b"1"):
        return None
    return int(parts[0]), int(parts[1]), parts[2] == b"1"


def _end(child: subprocess.Popen[bytes]) -> None:
    """Ends the child and reaps it."""
    import subprocess

    if child.poll() is not None:
        return
    try:
        child.terminate()
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _child_env() -> dict[str, str]:
    """This environment, with this process's cairn first on the child's path: the child runs
    the same code, wherever this one was imported from."""
    import site

    import cairn

    root = os.path.dirname(os.path.dirname(os.path.abspath(cairn.__file__)))
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    installed = [*site.getsitepackages(), site.getusersitepackages()]
    if root not in paths and root not in installed:  # not before the standard library
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env
