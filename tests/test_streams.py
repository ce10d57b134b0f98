"""Stream backups: --stdin, --stdin-from-command, failing producers, and the stream sources."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn.core.errors import UsageError
from cairn.model.node import DIR, FILE
from cairn.ops.backup.streams import StreamArchiver
from cairn.ops.progress import NullProgress
from cairn.ops.snapshots import find_node, load_snapshots, load_tree
from cairn.ops.sources.stream import (
    MAX_REPORTED_LINES,
    CommandSource,
    IterSource,
    SourceFailed,
    StreamItem,
    file_name,
    stream_path,
)
from tests.conftest import interruptible
from tests.craft import create_repo, open_repo

PY = sys.executable


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return create_repo(tmp_path / "repo")


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def snapshots(repo: Path) -> list:  # type: ignore[type-arg]
    return load_snapshots(open_repo(repo, load_index=False))


# ---------------------------------------------------------------------- the CLI
def test_stdin_is_stored_as_slash_name_and_dumps_back(
    repo: Path, cairn_proc, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(3 << 20) + b"tail"
    res = ok(
        cairn_proc(
            "backup", "-r", repo, "--stdin", "--stdin-filename", "db.sql", "--json", input=data
        )
    )
    doc = res.json()
    assert doc["paths"] == ["/db.sql"]
    assert doc["summary"]["bytes_read"] == len(data)
    assert doc["summary"]["files_new"] == 1
    r = open_repo(repo)
    snap = load_snapshots(r)[0]
    node = find_node(r, snap, "/db.sql")
    assert node.type == FILE and node.size == len(data) and node.mode == 0o600
    assert node.uid == os.getuid()
    for i, path in enumerate(("db.sql", "/db.sql")):
        target = tmp_path / f"out{i}"
        ok(cairn_proc("dump", "-r", repo, "latest", path, "--target", target))
        assert target.read_bytes() == data
    # The same stream again: nothing new is stored, and it counts as unchanged.
    again = ok(
        cairn_proc(
            "backup", "-r", repo, "--stdin", "--stdin-filename", "db.sql", "--json", input=data
        )
    ).json()
    assert again["summary"]["files_unchanged"] == 1
    assert again["summary"]["data_blobs_added"] == 0
    assert again["parent"] == doc["id"]


def test_stdin_default_name_and_exact_bytes(repo: Path, cairn_proc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = b"".join(os.urandom(1000) * 50 for _ in range(40))  # compressible and repetitive
    ok(cairn_proc("backup", "-r", repo, "--stdin", input=data))
    target = tmp_path / "out"
    ok(cairn_proc("dump", "-r", repo, "latest", "stdin", "--target", target))
    assert target.read_bytes() == data


def test_stdin_from_command_streams_the_output(repo: Path, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = "import os,sys; [sys.stdout.buffer.write(os.urandom(1<<20)) for _ in range(5)]"
    res = ok(
        run_cli(
            "backup",
            "-r",
            repo,
            "--json",
            "--stdin-from-command",
            "--stdin-filename",
            "dumps/x.bin",
            "--",
            PY,
            "-c",
            script,
        )
    )
    doc = res.json()
    assert doc["paths"] == ["/dumps/x.bin"]
    assert doc["summary"]["bytes_read"] == 5 << 20
    r = open_repo(repo)
    snap = load_snapshots(r)[0]
    assert find_node(r, snap, "/dumps").type == DIR
    assert find_node(r, snap, "/dumps/x.bin").size == 5 << 20


def test_failing_command_saves_no_snapshot_and_shows_its_stderr(repo: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    script = "import sys; print('partial output'); print('pg_dump: error: connection refused', file=sys.stderr); sys.exit(3)"
    res = run_cli("backup", "-r", repo, "--stdin-from-command", "--", PY, "-c", script)
    assert res.code == 1
    assert "pg_dump: error: connection refused" in res.err
    error_lines = [ln for ln in res.err.splitlines() if ln.startswith("cairn: error:")]
    assert error_lines == [
        f"cairn: error: {os.path.basename(PY)} exited with status 3: pg_dump: error: connection refused"
    ]
    assert "Traceback" not in res.err
    assert snapshots(repo) == []


def test_command_killed_by_a_signal_fails(repo: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    res = run_cli(
        "backup", "-r", repo, "--stdin-from-command", "--", "sh", "-c", "echo x; kill -9 $$"
    )
    assert res.code == 1
    assert "sh was killed by SIGKILL" in res.err
    assert snapshots(repo) == []


def test_missing_program_fails_in_one_line(repo: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    res = run_cli("backup", "-r", repo, "--stdin-from-command", "--", "/nonexistent/pg_dump")
    assert res.code == 1
    assert res.err.strip() == "cairn: error: cannot run pg_dump: No such file or directory"
    assert snapshots(repo) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stdin", "--stdin-from-command", "--", "true"], "cannot be combined"),
        (["--stdin", "/etc"], "give no paths"),
        (["--stdin-from-command"], "needs a command"),
        (["--stdin-filename", "x", "/etc"], "needs --stdin"),
        (["--stdin-from-command", "--exclude", "*.o", "--", "true"], "do not apply to streams"),
        (["--stdin-from-command", "--stdin-filename", "../x", "--", "true"], "invalid file name"),
        ([], "nothing to back up"),
    ],
)
def test_stream_usage_errors(repo: Path, run_cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    res = run_cli("backup", "-r", repo, *args)
    assert res.code == 2, res.err
    assert message in res.err
    assert len(res.err.strip().splitlines()) == 1


# ---------------------------------------------------------------------- sources and layout
def test_command_source_reports_stderr_lines_up_to_a_limit() -> None:
    script = "import sys\nfor i in range(300): print(f'line {i}', file=sys.stderr)\nsys.exit(2)"
    lines: list[str] = []
    source = CommandSource([PY, "-c", script], label="dumper")
    with pytest.raises(SourceFailed) as e, source.open(lines.append) as stream:
        assert stream.read() == b""
    assert str(e.value) == "dumper exited with status 2: line 299"
    assert lines[:2] == ["line 0", "line 1"]
    assert len(lines) == MAX_REPORTED_LINES + 1
    assert lines[-1] == "(more lines on stderr not shown)"


def test_abandoned_stream_stops_the_command_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # A shell that starts a child; both would write forever.
    script = f"yes > /dev/null & echo $! > {pids}; echo $$ >> {pids}; exec yes"
    source = CommandSource(["sh", "-c", script])
    with pytest.raises(RuntimeError), source.open(lambda line: None) as stream:
        assert stream.read(4096)
        while len(pids.read_text().split()) < 2:
            time.sleep(0.01)
        raise RuntimeError("the backup failed")
    for pid in map(int, pids.read_text().split()):
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid), f"process {pid} still runs"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"  # a zombie waits only for its parent


def test_streams_share_a_tree_and_keep_their_order_of_names(repo: Path) -> None:
    r = open_repo(repo)
    items = [
        StreamItem("/pg/b.sql", IterSource(lambda: iter([b"bbb"]), "b")),
        StreamItem("/pg/a.sql", IterSource(lambda: iter([b"a" * 10, b"", b"a"]), "a")),
        StreamItem("/top.bin", IterSource(lambda: iter([]), "empty")),
    ]
    with r.writer() as writer:
        archiver = StreamArchiver(writer, NullProgress())
        tree = archiver.run(items)
        writer.flush()
    root = {n.name: n for n in load_tree(r, tree)}
    assert set(root) == {b"pg", b"top.bin"}
    assert root[b"pg"].type == DIR and root[b"pg"].mode == 0o700
    assert root[b"top.bin"].size == 0 and root[b"top.bin"].content == []
    assert root[b"pg"].subtree is not None
    pg = {n.name: n for n in load_tree(r, root[b"pg"].subtree)}
    assert pg[b"a.sql"].size == 11 and pg[b"b.sql"].size == 3
    assert archiver.summary.files_new == 3 and archiver.summary.bytes_read == 14


@pytest.mark.parametrize(
    "paths",
    [["/a", "/a"], ["/a", "/a/b"], ["/a/b", "/a"]],
)
def test_streams_may_not_collide(repo: Path, paths: list[str]) -> None:
    r = open_repo(repo)
    items = [StreamItem(p, IterSource(lambda: iter([b"x"]), p)) for p in paths]
    with r.writer() as writer, pytest.raises(UsageError):
        StreamArchiver(writer, NullProgress()).run(items)


def test_stream_paths_and_file_names() -> None:
    assert stream_path("db.sql") == "/db.sql"
    assert stream_path("/a//b/./c.sql") == "/a/b/c.sql"
    for bad in ("", "/", "..", "a/../b", "a\0b"):
        with pytest.raises(UsageError):
            stream_path(bad)
    assert file_name("app") == "app"
    assert file_name("a/b%c") == "a%2Fb%25c"
    assert file_name("..") == "%2E%2E"
    assert file_name(".hidden") == ".hidden"


def test_interrupting_cairn_stops_the_command(repo: Path, tmp_path: Path) -> None:
    """Ctrl-C on cairn: the producer (in its own session) is stopped too, nothing is saved."""
    pidfile = tmp_path / "pid"
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "cairn",
            "backup",
            "-r",
            str(repo),
            "--stdin-from-command",
            "--",
            "sh",
            "-c",
            f"echo $$ > {pidfile}; exec yes",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)
    assert snapshots(repo) == []
