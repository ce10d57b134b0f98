"""Fewer runs of Python's cycle collector while a walk makes objects by the million.

The collector's youngest generation is collected every 700 new container objects, and each
collection of the oldest traverses every object alive. A backup walking a million small files
makes several objects per file (its node, its result, the lists that carry them), most of
them alive until their directory's tree is written, and almost none in a cycle: reference
counting frees them. Collecting every 50,000 new objects instead took a tenth off the first
backup of a million small files (docs/performance.md, "The walk made lighter").

The threshold is the process's. ``fewer_collections`` may be entered from several threads at
once (two jobs of the web interface): the first to enter raises it, the last to leave puts back
what it was.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# new container objects between two collections of the youngest generation, while relaxed
RELAXED_THRESHOLD = 50_000

_lock = threading.Lock()
_entered = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    global _entered, _saved
    with _lock:
        if _entered == 0:
            _saved = gc.get_threshold()
            first, *older = _saved
            if first:  # 0: collection is off, and stays so
                gc.set_threshold(max(first, RELAXED_THRESHOLD), *older)
        _entered += 1
    try:
        yield
    finally:
        with _lock:
            _entered -= 1
            if _entered == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
