"""A stream to back up, where it goes in the snapshot, and the ways of producing one.

A Source is opened once; the context manager yields a binary stream that is read to its end,
then closing it checks that the producer succeeded (raising SourceFailed if not). If the backup
is abandoned while a command is still running, the command and its children are stopped.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from cairn.core.errors import CairnError, UsageError

Report = Callable[[str], None]  # receives each line a producer writes to its stderr
MAX_REPORTED_LINES = 200  # of a command's stderr; the last lines always end up in the error
_STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when a command must be stopped


class SourceFailed(CairnError):
    """A stream's producer failed: the stream is incomplete and must not become a snapshot."""


class Source(Protocol):
    label: str  # names the producer in messages: "pg_dump", "standard input"

    def open(self, report: Report) -> contextlib.AbstractContextManager[BinaryIO]: ...


@dataclass
class StreamItem:
    """One stream, stored as the regular file ``path`` (absolute, '/'-separated) in a snapshot."""

    path: str
    source: Source


def stream_path(name: str) -> str:
    """'db.sql', '/db.sql' -> '/db.sql'; 'pg/app.sql' -> '/pg/app.sql'. Rejects '..' and ''."""
    parts = [p for p in name.split("/") if p and p != "."]
    if not parts or ".." in parts or any("\0" in p for p in parts):
        raise UsageError(f"invalid file name for a stream: {name!r}")
    return "/" + "/".join(parts)


def file_name(name: str) -> str:
    """A database or repository name as one path component: '/' and '%' are %-escaped, and a
    name of only dots gets its dots escaped too ('a/b' -> 'a%2Fb', '..' -> '%2E%2E')."""
    escaped = name.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if not escaped.strip("."):
        escaped = escaped.replace(".", "%2E")
    return escaped


@dataclass
class PipeSource:
    """An already open stream, such as standard input."""

    stream: BinaryIO
    label: str = "standard input"

    @contextlib.contextmanager
    def open(self, report: Report) -> Iterator[BinaryIO]:
        yield self.stream


@dataclass
class IterSource:
    """A stream produced in this process, block by block, by ``produce``."""

    produce: Callable[[], Iterator[bytes]]
    label: str

    @contextlib.contextmanager
    def open(self, report: Report) -> Iterator[BinaryIO]:
        blocks = self.produce()
        try:
            yield io.BufferedReader(_IterReader(blocks), buffer_size=1 << 20)  # type: ignore[arg-type]
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()


@dataclass
class CommandSource:
    """The standard output of a command. Its stderr lines are passed to ``report`` as they come
    (the first MAX_REPORTED_LINES of them); a non-zero exit raises SourceFailed naming the
    program and quoting its last stderr line. The command line itself is never quoted in
    messages, so an argument that should stay private does not leak into logs."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)  # added to this process's environment
    label: str = ""

    def __post_init__(self) -> None:
        if not self.argv:
            raise UsageError("no command given")
        if not self.label:
            self.label = os.path.basename(self.argv[0])

    @contextlib.contextmanager
    def open(self, report: Report) -> Iterator[BinaryIO]:
        try:
            proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, **self.env},
                start_new_session=True,  # so that stopping it stops its children too
            )
        except OSError as e:
            raise SourceFailed(f"cannot run {self.label}: {e.strerror or e}") from None
        assert proc.stdout is not None and proc.stderr is not None
        errors = _StderrReader(proc.stderr, report)
        try:
            yield proc.stdout  # type: ignore[misc]
        except BaseException:
            _stop(proc)
            errors.join()
            raise
        finally:
            proc.stdout.close()
        code = proc.wait()
        errors.join()
        if code != 0:
            raise SourceFailed(f"{self.label} {describe_exit(code)}{errors.last_line()}")


def command_lines(argv: Sequence[str], env: Mapping[str, str], label: str) -> list[str]:
    """The non-empty lines a short command (a database listing) prints; SourceFailed if it
    cannot run or fails."""
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={**os.environ, **env},
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        detail = e.strerror if isinstance(e, OSError) else "timed out"
        raise SourceFailed(f"cannot run {label}: {detail or e}") from None
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        last = f": {errors[-1].strip()}" if errors else ""
        raise SourceFailed(f"{label} {describe_exit(proc.returncode)}{last}")
    return [ln for ln in proc.stdout.decode("utf-8", "surrogateescape").splitlines() if ln]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, _STOP_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class _StderrReader:
    """Reads a command's stderr on a thread: reports lines, keeps the last few for the error."""

    def __init__(self, stream: BinaryIO, report: Report) -> None:
        self._stream = stream
        self._report = report
        self._tail: deque[str] = deque(maxlen=5)
        self._thread = threading.Thread(target=self._run, name="cairn-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        reported = 0
        with self._stream:
            for raw in self._stream:
                line = raw.decode("utf-8", "replace").rstrip()
                if not line:
                    continue
                self._tail.append(line)
                if reported < MAX_REPORTED_LINES:
                    self._report(line)
                elif reported == MAX_REPORTED_LINES:
                    self._report("(more lines on stderr not shown)")
                reported += 1

    def join(self) -> None:
        self._thread.join()

    def last_line(self) -> str:
        return f": {self._tail[-1]}" if self._tail else ""


class _IterReader(io.RawIOBase):
    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def,override]
        while not self._buf:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._buf = memoryview(block)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
