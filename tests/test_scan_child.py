"""The backup's scanner counts in a child process: the same totals as a count in this process,
the child ended and reaped however the backup ends, and the count done here where no child can
be started. A child that fails or writes nonsense never fails the backup."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.core.errors import StorageError
from cairn.ops.backup import snapshot_writer
from cairn.ops.backup.archiver import BackupOptions
from cairn.ops.backup.scanner import CHILD_MODULE, Scanner, Settings, parse_count
from cairn.ops.filter_patterns import PatternList

TOTAL = re.compile(r" backup: \d+ of (\d+)(\+?) files")
# the tree's options, and what the backup reads with them: (files, bytes)
OPTIONS = {
    "none": ([], (20, 15 * 1000 + 300_000 + 2 * 5000 + 3 * 7000)),
    "excludes": (
        ["-e", "*.tmp", "--iexclude", "CACHE", "--exclude-larger-than", "100K", "-x"],
        (12, 10 * 1000 + 3 * 7000),  # a hardlink's later path: its bytes, not the file again
    ),
}


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """Files in several directories, some excluded by name (case or not) or by size, a file
    with three paths, a symlink, and a tmpfs mounted inside (where mounting is allowed)."""
    root = tmp_path / "tree"
    for d in ("a/deep/deeper", "b", "b/Cache/inner", "m"):
        (root / d).mkdir(parents=True)
    for i in range(10):
        (root / ("a" if i % 2 else "a/deep/deeper") / f"f{i}").write_bytes(b"x" * 1000)
    for i in range(4):
        (root / "a" / f"scratch{i}.tmp").write_bytes(b"t" * 1000)
    (root / "b" / "Cache" / "inner" / "junk").write_bytes(b"j" * 1000)
    (root / "b" / "big").write_bytes(b"b" * 300_000)
    (root / "b" / "linked").write_bytes(b"l" * 7000)
    os.link(root / "b" / "linked", root / "a" / "linked-too")
    os.link(root / "b" / "linked", root / "a" / "deep" / "linked-three")
    os.symlink("f1", root / "a" / "to-f1")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", root / "m"], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting is not permitted here (needed for --one-file-system)")
    try:
        (root / "m" / "elsewhere").write_bytes(b"e" * 5000)
        (root / "m" / "sub").mkdir()
        (root / "m" / "sub" / "too").write_bytes(b"e" * 5000)
        (root / "b" / "empty").write_bytes(b"")
        yield root
    finally:
        subprocess.run(["umount", root / "m"], capture_output=True, check=False)


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The scanner children started meanwhile."""
    made: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    class Recorded(real):  # type: ignore[valid-type,misc]
        def __init__(self, args, *rest, **kw) -> None:  # type: ignore[no-untyped-def]
            super().__init__(args, *rest, **kw)
            if CHILD_MODULE in args:
                self.sid = os.getsid(self.pid)  # it has not read its work yet: it is there
                made.append(self)

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    return made


@pytest.fixture
def count_first(monkeypatch: pytest.MonkeyPatch, children) -> None:  # type: ignore[no-untyped-def]
    """The backup walks its paths once the scanner's child is done (on a tree this small it
    could be done before the child has started)."""
    real = snapshot_writer.Archiver.run

    def run(self, paths):  # type: ignore[no-untyped-def]
        wait_for(children)
        children[0].wait(60)
        return real(self, paths)

    monkeypatch.setattr(snapshot_writer.Archiver, "run", run)


def wait_for(children: list[subprocess.Popen[bytes]]) -> None:
    for _ in range(6000):
        if children:
            return
        threading.Event().wait(0.01)
    raise AssertionError("no child started")


@pytest.fixture
def lines_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_PROGRESS_INTERVAL", "0")


def gone(child: subprocess.Popen[bytes]) -> bool:
    """Ended and reaped: no process, no zombie."""
    return child.returncode is not None and not os.path.exists(f"/proc/{child.pid}")


def final_totals(err: str) -> set[int]:
    return {int(m[1]) for m in map(TOTAL.search, err.splitlines()) if m and not m[2]}


def backup(run_cli, repo: Path, *args: str | Path):  # type: ignore[no-untyped-def]
    """The backup, its progress lines on stderr (not asked for JSON)."""
    return run_cli("backup", "--repo", repo, *args)


def summary_counts(run_cli, res, repo: Path) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(files, bytes) of the backup that gave ``res``, the latest."""
    assert res.code == 0, res.err
    s = run_cli("snapshots", "--repo", repo, "--json").json()[-1]["summary"]
    return s["files_new"] + s["files_changed"] + s["files_unchanged"], s["bytes_total"]


@pytest.mark.parametrize("which", sorted(OPTIONS))
def test_the_child_counts_what_the_backup_reads(
    run_cli, repo_path: Path, tree: Path, children, count_first, lines_every_step, which: str
) -> None:  # type: ignore[no-untyped-def]
    """The child's total is the count of this process (``Scanner.count``) and the backup's."""
    args, expected = OPTIONS[which]
    res = backup(run_cli, repo_path, tree, *args)
    assert summary_counts(run_cli, res, repo_path) == expected
    assert final_totals(res.err) == {expected[0]}
    assert len(children) == 1 and gone(children[0])
    # the same, asked of the scanner directly
    options = BackupOptions(
        excludes=PatternList(["*.tmp"] if args else []),
        iexcludes=PatternList(["CACHE"] if args else [], ignore_case=True),
        exclude_larger_than=100_000 if args else None,
        one_file_system=bool(args),
    )
    assert Scanner([os.fsencode(tree)], options).count() == expected
    scanner, seen = Scanner([os.fsencode(tree)], options), Seen()
    count_aside(scanner, seen)
    assert scanner.counted_by == "child"
    assert seen.totals[-1] == (*expected, True)


class Seen:
    def __init__(self) -> None:
        self.totals: list[tuple[int, int, bool]] = []
        self.final = threading.Event()

    def total(self, files: int, nbytes: int, complete: bool, estimated: bool = False) -> None:
        self.totals.append((files, nbytes, complete))
        if complete:
            self.final.set()


def count_aside(scanner: Scanner, seen: Seen) -> None:
    """``start``, then ``stop`` once the count is final."""
    scanner.start(seen)
    assert seen.final.wait(60)
    scanner.stop()


def test_the_count_is_not_done_in_the_backup_process(
    run_cli, repo_path: Path, tree: Path, children, count_first, lines_every_step, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Counting here fails: the total comes from the child all the same."""

    def not_here(self, report=None):  # type: ignore[no-untyped-def]
        raise AssertionError("counted in the backup's process")

    monkeypatch.setattr(Scanner, "count", not_here)
    res = backup(run_cli, repo_path, tree)
    assert summary_counts(run_cli, res, repo_path) == OPTIONS["none"][1]
    assert final_totals(res.err) == {OPTIONS["none"][1][0]}
    (child,) = children
    assert child.pid != os.getpid() and gone(child)
    assert child.returncode == 0  # it ended by itself, once done
    # in a session of its own: the terminal's Ctrl-C reaches the backup only, which ends it
    assert child.sid == child.pid != os.getsid(0)


def _failing_archiver(monkeypatch, children, error: BaseException) -> None:  # type: ignore[no-untyped-def]
    """The backup fails once the scanner's child is running."""

    def run(self, paths):  # type: ignore[no-untyped-def]
        wait_for(children)
        raise error

    monkeypatch.setattr(snapshot_writer.Archiver, "run", run)


@pytest.mark.parametrize(
    ("error", "code"), [(StorageError("the store is gone"), 1), (KeyboardInterrupt(), 130)]
)
def test_no_child_is_left_by_a_failed_or_interrupted_backup(
    run_cli, repo_path: Path, tree: Path, children, monkeypatch, error, code
) -> None:  # type: ignore[no-untyped-def]
    _failing_archiver(monkeypatch, children, error)
    res = backup(run_cli, repo_path, tree)
    assert res.code == code, res.err
    (child,) = children
    assert gone(child)
    assert run_cli("snapshots", "--repo", repo_path, "--json").json() == []


def test_a_child_stopped_midway_is_ended_and_reaped(tree: Path, children) -> None:  # type: ignore[no-untyped-def]
    """``stop`` at any time (here before the child has read its work or as it counts) leaves
    no process, and no total arrives after it."""
    for _ in range(5):
        scanner, seen = Scanner([os.fsencode(tree)], BackupOptions()), Seen()
        scanner.start(seen)
        scanner.stop()
        n = len(seen.totals)
        assert all(gone(c) for c in children)
        assert len(seen.totals) == n
        assert scanner._thread is not None and not scanner._thread.is_alive()


def test_without_a_child_the_backup_counts_on_its_thread(
    run_cli, repo_path: Path, tree: Path, children, lines_every_step, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """No interpreter to start: the count is done on the scanner's thread instead."""
    monkeypatch.setattr(sys, "executable", os.fspath(tree / "no-python-here"))
    res = backup(run_cli, repo_path, tree)
    assert summary_counts(run_cli, res, repo_path) == OPTIONS["none"][1]
    assert final_totals(res.err) == {OPTIONS["none"][1][0]}
    assert children == []
    scanner, seen = Scanner([os.fsencode(tree)], BackupOptions()), Seen()
    count_aside(scanner, seen)
    assert scanner.counted_by == "thread"
    assert seen.totals[-1] == (*OPTIONS["none"][1], True)


@pytest.fixture
def relayed_first(monkeypatch: pytest.MonkeyPatch, children) -> None:  # type: ignore[no-untyped-def]
    """The backup walks its paths once the scanner's child has ended and all it said has been
    relayed (its thread is done)."""
    real = snapshot_writer.Archiver.run

    def run(self, paths):  # type: ignore[no-untyped-def]
        wait_for(children)
        children[0].wait(60)
        for t in threading.enumerate():
            if t.name == "cairn-scan":
                t.join(60)
        return real(self, paths)

    monkeypatch.setattr(snapshot_writer.Archiver, "run", run)


def test_a_child_that_writes_nonsense_or_crashes_fails_nothing(
    run_cli,
    repo_path: Path,
    tree: Path,
    tmp_path: Path,
    lines_every_step,
    monkeypatch,
    relayed_first,
) -> None:  # type: ignore[no-untyped-def]
    """A child that writes lines of no meaning, a count, and dies: the backup succeeds, with
    the count as a running (not final) total until its walk is done, and what it walked as
    the final one."""
    fake = tmp_path / "fake-python"
    fake.write_text(
        "#!/bin/sh\nprintf 'hello\\n1 2\\n-1 2 0\\n5 6 7\\n\\377\\n7 7000 0\\n'\nexit 3\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", os.fspath(fake))
    res = backup(run_cli, repo_path, tree)
    assert summary_counts(run_cli, res, repo_path) == OPTIONS["none"][1]
    assert " of 7+ files" in res.err and final_totals(res.err) == {OPTIONS["none"][1][0]}


def test_a_backup_over_before_the_child_has_counted_ends_with_its_own_total(
    run_cli, repo_path: Path, tree: Path, tmp_path: Path, lines_every_step, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A short backup can end before the child has said anything: its last line still has a
    total, what the backup walked, at 100%."""
    fake = tmp_path / "slow-python"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", os.fspath(fake))
    res = backup(run_cli, repo_path, tree)
    files = summary_counts(run_cli, res, repo_path)[0]
    assert final_totals(res.err) == {files}
    last = [line for line in res.err.splitlines() if " backup: " in line][-1]
    assert f" backup: {files} of {files} files" in last and "100%" in last


def test_count_lines() -> None:
    assert parse_count(b"12 3400 0\n") == (12, 3400, False)
    assert parse_count(b"12 3400 1\n") == (12, 3400, True)
    for bad in (b"", b"\n", b"1 2\n", b"1 2 3\n", b"-1 2 0\n", b"a b c\n", b"1 2 0 4\n"):
        assert parse_count(bad) is None


def test_the_child_ends_when_its_stdin_closes(tmp_path: Path) -> None:
    """The backup gone (its end of the child's stdin closed), the child stops counting: it
    ends without a final count, though its work is far from done."""
    root = tmp_path / "wide"
    for i in range(20_000):
        (root / str(i % 100) / str(i)).mkdir(parents=True)
    work = pickle.dumps(([os.fsencode(root)], Settings(None, None, None, False)))
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", CHILD_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = child.communicate(work, timeout=60)  # writes, then closes stdin
    assert child.returncode == 0 and err == b""
    assert all(parse_count(line) is not None for line in out.splitlines())
    assert not any(parse_count(line)[2] for line in out.splitlines())  # type: ignore[index]
    # given time (stdin left open), the same child finishes the count
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", CHILD_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(work)
    child.stdin.flush()
    last = child.stdout.read().splitlines()[-1]
    child.stdin.close()
    assert child.wait(60) == 0
    assert parse_count(last) == (0, 0, True)
