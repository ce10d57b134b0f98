"""What a use case reports while it runs, to whichever front end called it.

``Events`` extends the operations' ``Progress`` (an entry done, bytes done, a warning about one
entry) with ``status``: a line about the operation as a whole (a prune waiting for backups, a
restore waiting for archived data). The command line's TerminalProgress implements it; a web
server or a mount would implement it their way; ``NullEvents`` collects, for tests and jobs.
"""

from __future__ import annotations

from typing import Protocol

from cairn.ops.progress import NullProgress, Progress


class Events(Progress, Protocol):
    def status(self, text: str) -> None:
        """What the operation as a whole is doing now (one line, no trailing newline)."""


class NullEvents(NullProgress):
    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[str] = []

    def status(self, text: str) -> None:
        self.statuses.append(text)
