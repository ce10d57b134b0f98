"""The backup's scanner in a process of its own: ``python -m cairn.ops.backup.scan_child``.

It reads its work from stdin (a pickle of the paths and ``Settings``, written by
``Scanner.start``), counts with ``Scanner.count``, and writes its running count to stdout as
lines (``format_count``): at most every ``INTERVAL`` seconds, and the final one. It ends once
that is written, when its stdin closes (the backup is gone: it keeps stdin open while it
runs), or when its stdout does. It imports as little as it can: its start-up is part of every
first backup.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from cairn.ops.backup.scanner import Scanner, format_count

INTERVAL = 0.1  # seconds between running counts


class Lines:
    """Writes the count to ``fd``, at most every ``INTERVAL`` seconds until it is final."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.last = -INTERVAL

    def total(self, files: int, nbytes: int, complete: bool, estimated: bool = False) -> None:
        now = time.monotonic()
        if not complete and now - self.last < INTERVAL:
            return
        self.last = now
        try:
            os.write(self.fd, format_count(files, nbytes, complete))
        except OSError:
            os._exit(0)  # nobody reads any more


def _watch_stdin() -> None:
    """Ends the process once stdin reaches its end: the backup closed it, or is gone."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os._exit(0)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # an interrupt ends it, quietly
    import pickle

    paths, settings = pickle.load(sys.stdin.buffer)
    threading.Thread(target=_watch_stdin, name="cairn-scan-stdin", daemon=True).start()
    Scanner(paths, settings).count(Lines(sys.stdout.fileno()))
    os._exit(0)


if __name__ == "__main__":
    main()
