"""What a restore counts and reports: files, directories and bytes restored, and every problem,
each with the path it concerns (one place, shared by the restore's threads)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cairn.ops.progress import Progress
from cairn.ops.treewalk import TreeProblem


@dataclass
class RestoreSummary:
    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes_written: int = 0
    errors: int = 0
    verified: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Tally:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.summary = RestoreSummary()
        self._lock = threading.Lock()

    def error(self, path: bytes, message: str) -> None:
        with self._lock:
            self.summary.errors += 1
        self.progress.warning(path, message)

    def tree_problem(self, problem: TreeProblem) -> None:
        """An entry a tree leaves out, or a tree that cannot be read: reported, the rest goes
        on."""
        self.error(problem.path or b"/", problem.describe())

    def file_done(self, path: bytes, size: int, written: int) -> None:
        with self._lock:
            self.summary.files += 1
            self.summary.bytes_written += written
        self.progress.item_done(path, size)

    def linked(self, size: int) -> None:
        """A later path of a hardlink: its bytes count as done (a snapshot's total counts
        them), not the file again."""
        with self._lock:
            self.summary.files += 1
        self.progress.bytes_done(size)
