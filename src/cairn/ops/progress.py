"""What operations report while they run. The UI implements these; tests may too."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def item_done(self, path: bytes, size: int) -> None:
        """One file finished (backed up, restored or verified)."""

    def bytes_done(self, n: int) -> None:
        """``n`` more bytes were processed."""

    def warning(self, path: bytes, message: str) -> None:
        """Something went wrong with one entry; the operation goes on."""


class NullProgress:
    def __init__(self) -> None:
        self.warnings: list[tuple[bytes, str]] = []

    def item_done(self, path: bytes, size: int) -> None:
        pass

    def bytes_done(self, n: int) -> None:
        pass

    def warning(self, path: bytes, message: str) -> None:
        self.warnings.append((path, message))
