"""What a restore (or a dump) will write, for its progress: the regular files of a walk (a
file with several paths once) and the bytes of every path, as a snapshot's summary counts them.

A part of a snapshot, or a filtered one, has no summary: its trees are walked on a thread of
its own while the restore runs, and the total grows as they are (``Progress.total``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from cairn.model.hardlinks import node_link_key
from cairn.model.node import FILE
from cairn.model.snapshot import Snapshot
from cairn.ops.progress import Progress
from cairn.ops.restore.plan import Entry

REPORT_EVERY = 256  # entries between reports of a growing total


def summary_totals(snap: Snapshot) -> tuple[int, int] | None:
    """(files, bytes) of the whole snapshot from its summary; None if it has none."""
    s = snap.summary
    files = s.files_new + s.files_changed + s.files_unchanged
    if not files and not s.bytes_total:
        return None  # no summary (an old or repaired snapshot), or nothing in it: walk
    return files, s.bytes_total


class EntryCounter:
    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = entries
        self.files = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, report: Progress | None = None) -> tuple[int, int]:
        links: set[tuple[int, int]] = set()
        for i, entry in enumerate(self.entries):
            if self._stop.is_set():
                return self.files, self.bytes
            node = entry.node
            if node.type != FILE:
                continue
            self.bytes += node.size
            group = node_link_key(node)
            if group is not None:
                if group in links:
                    continue
                links.add(group)
            self.files += 1
            if report is not None and i % REPORT_EVERY == 0:
                report.total(self.files, self.bytes, complete=False)
        if report is not None:
            report.total(self.files, self.bytes, complete=True)
        return self.files, self.bytes

    def start(self, report: Progress) -> None:
        """Counts on a daemon thread, reporting to ``report``."""
        self._thread = threading.Thread(
            target=self._run, args=(report,), name="cairn-count", daemon=True
        )
        self._thread.start()

    def _run(self, report: Progress) -> None:
        try:
            self.count(report)
        except Exception:  # the restore itself reports what cannot be read
            pass
        finally:
            close = getattr(self.entries, "close", None)
            if close is not None:
                close()  # a walk left early ends its reads

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
