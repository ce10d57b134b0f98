"""Operations that change or read a repository at length (a job, a prune, a check, a restore),
each on a worker thread so the pages stay responsive, one per repository at a time.

An operation reports through ``WebEvents`` (the use cases' Events protocol): counts, phase,
status lines and warnings land in its ``Progress``, which the page follows over server-sent
events. Cancelling sets a flag that the next event raises on (``Interrupted``), in whichever
thread of the use case reports it: the use case stops as it does on Ctrl-C. Every operation is
written to the history when it begins and when it ends.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cairn.app.history import History
from cairn.core import clock
from cairn.core.errors import CairnError, Interrupted

RUNNING, OK, PARTIAL, FAILED, CANCELLED = "running", "ok", "partial", "failed", "cancelled"
LOG_LINES = 2000  # kept of one operation's log (the first ones, then a note)
KEPT = 100  # finished operations kept in memory (older ones: in the history only)


class Busy(CairnError):
    """The repository has an operation running already."""


@dataclass
class Outcome:
    outcome: str = OK  # ok, partial or failed
    summary: str = ""


@dataclass
class Operation:
    id: int
    repository: str
    kind: str
    title: str
    job: str | None = None
    outcome: str = RUNNING
    summary: str = ""
    phase: str = ""
    status: str = ""
    files_done: int = 0
    bytes_done: int = 0
    files_total: int | None = None
    bytes_total: int | None = None
    log: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    version: int = 0  # bumped at every change: the event stream sends only what changed

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "outcome": self.outcome,
            "summary": self.summary,
            "phase": self.phase,
            "status": self.status,
            "files_done": self.files_done,
            "bytes_done": self.bytes_done,
            "files_total": self.files_total,
            "bytes_total": self.bytes_total,
            "log": self.log[-20:],
            "version": self.version,
        }


class WebEvents:
    """The Events (and RestoreEvents) of one operation."""

    def __init__(self, op: Operation, lock: threading.Lock) -> None:
        self.op = op
        self._lock = lock
        self.warnings: list[tuple[bytes, str]] = []

    def _changed(self) -> None:
        self.op.version += 1
        if self.op.cancel.is_set():
            raise Interrupted("cancelled")

    def _log(self, line: str) -> None:
        if len(self.op.log) < LOG_LINES:
            self.op.log.append(line)
        elif len(self.op.log) == LOG_LINES:
            self.op.log.append("(more lines left out)")

    def item_done(self, path: bytes, size: int) -> None:
        with self._lock:
            self.op.files_done += 1
            self._changed()

    def bytes_done(self, n: int) -> None:
        with self._lock:
            self.op.bytes_done += n
            self._changed()

    def warning(self, path: bytes, message: str) -> None:
        with self._lock:
            self.warnings.append((path, message))
            self._log(f"warning: {os.fsdecode(path)}: {message}")
            self._changed()

    def start(
        self, phase: str, files: int | None = None, nbytes: int | None = None, unit: str = "files"
    ) -> None:
        with self._lock:
            op = self.op
            op.phase, op.files_done, op.bytes_done = phase, 0, 0
            op.files_total, op.bytes_total = files, nbytes
            self._log(f"{phase}: started")
            self._changed()

    def total(self, files: int, nbytes: int, complete: bool, estimated: bool = False) -> None:
        with self._lock:
            self.op.files_total, self.op.bytes_total = files, nbytes
            self._changed()

    def status(self, text: str) -> None:
        with self._lock:
            self.op.status = text
            self._log(text)
            self._changed()

    def thawing(self, thaw: object) -> None:
        self.status("archived packs must be restored from the archive first")

    def note(self, text: str) -> None:
        """A line for the log that is not an event of the use case (a job's warnings)."""
        with self._lock:
            self._log(text)
            self.op.version += 1


class Operations:
    def __init__(self, history: History) -> None:
        self.history = history
        self._lock = threading.Lock()
        self._ops: dict[int, Operation] = {}
        self._busy: dict[str, int] = {}  # repository -> its running operation

    def start(
        self,
        repository: str,
        kind: str,
        title: str,
        work: Callable[[WebEvents], Outcome],
        job: str | None = None,
    ) -> Operation:
        """Runs ``work`` on a thread; Busy if ``repository`` has an operation running."""
        with self._lock:
            running = self._busy.get(repository)
            if running is not None:
                raise Busy(f"repository {repository} is busy: {self._ops[running].title}")
            run = self.history.begin(repository, kind, title, job, clock.now().timestamp())
            op = Operation(run, repository, kind, title, job)
            self._ops[op.id] = op
            finished = [i for i, o in self._ops.items() if o.outcome != RUNNING]
            for old in finished[:-KEPT]:
                del self._ops[old]
            self._busy[repository] = op.id
        events = WebEvents(op, self._lock)
        thread = threading.Thread(
            target=self._run, args=(op, work, events), name=f"cairn-op-{op.id}", daemon=True
        )
        thread.start()
        return op

    def _run(self, op: Operation, work: Callable[[WebEvents], Outcome], events: WebEvents) -> None:
        try:
            result = work(events)
            outcome, summary = result.outcome, result.summary
        except Interrupted as e:
            outcome, summary = (CANCELLED if op.cancel.is_set() else FAILED), str(e)
        except CairnError as e:
            outcome, summary = FAILED, str(e)
        except Exception as e:  # a bug in one operation must not take the server down
            outcome, summary = FAILED, f"{type(e).__name__}: {e}"
        if outcome != OK and op.cancel.is_set():
            outcome = CANCELLED
        with self._lock:
            log = "\n".join(op.log)
        self.history.finish(op.id, outcome, summary, log, clock.now().timestamp())
        with self._lock:
            op.outcome, op.summary = outcome, summary
            op.version += 1
            del self._busy[op.repository]

    def get(self, op_id: int) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)

    def state(self, op_id: int) -> dict[str, Any] | None:
        with self._lock:
            op = self._ops.get(op_id)
            return None if op is None else op.state()

    def running(self) -> list[Operation]:
        with self._lock:
            return [self._ops[i] for i in self._busy.values()]

    def cancel(self, op_id: int) -> bool:
        with self._lock:
            op = self._ops.get(op_id)
            if op is None or op.outcome != RUNNING:
                return False
            op.cancel.set()
            op.version += 1
            return True
