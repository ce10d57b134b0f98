"""What operations report while they run. The UI implements these; tests may too.

Counts are of regular files (a hardlink's later paths are not counted again) and of bytes
(every path's, as a snapshot's summary counts them). An operation that knows how much it will
do says so with ``start`` (a phase: a restore's writing, then its verifying); one that counts
it while it runs (a backup's scanner) reports ``total`` as the count grows, ``complete`` once
it is final.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def item_done(self, path: bytes, size: int) -> None:
        """One file finished (backed up, restored or verified)."""

    def bytes_done(self, n: int) -> None:
        """``n`` more bytes were processed."""

    def warning(self, path: bytes, message: str) -> None:
        """Something went wrong with one entry; the operation goes on."""

    def start(
        self, phase: str, files: int | None = None, nbytes: int | None = None, unit: str = "files"
    ) -> None:
        """A phase begins, its counts from zero: ``files`` and ``nbytes`` to do, if known;
        ``unit``: what its items are (files, packs)."""

    def total(self, files: int, nbytes: int, complete: bool, estimated: bool = False) -> None:
        """What the running phase has to do, as counted so far; ``complete`` when final;
        ``estimated``: taken from elsewhere (the parent snapshot), not counted."""


class NullProgress:
    def __init__(self) -> None:
        self.warnings: list[tuple[bytes, str]] = []

    def item_done(self, path: bytes, size: int) -> None:
        pass

    def bytes_done(self, n: int) -> None:
        pass

    def warning(self, path: bytes, message: str) -> None:
        self.warnings.append((path, message))

    def start(
        self, phase: str, files: int | None = None, nbytes: int | None = None, unit: str = "files"
    ) -> None:
        pass

    def total(self, files: int, nbytes: int, complete: bool, estimated: bool = False) -> None:
        pass
