"""Keeping the resident set small with glibc's allocator.

cairn moves data in chunks of around a megabyte between threads. glibc raises its mmap
threshold after such buffers are freed, so later ones come from per-thread heap arenas, which
rarely give memory back: the resident set grows with the number of threads and the history of
allocations, not with what is live. A fixed threshold keeps large buffers in mmap (returned on
free), and fewer arenas bound the rest.

Buffers below the threshold still come from the heaps, and a heap gives back only what is free
at its top: a cache of such buffers that turns over (the mount's blob cache, a snapshot's small
files read one after another) leaves its freed buffers resident between the ones still live.
``trim_malloc`` hands those pages back.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import threading
from typing import Any

# the smallest --memory-limit (cairn.app.budget): a reading thread's buffers and a pack's staging
MIN_MEMORY_LIMIT = 48 << 20

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def _glibc_function(name: str, keep_gil: bool = False) -> Any:
    """A function of glibc's allocator, None where the C library is not glibc. ``keep_gil``:
    called without releasing the GIL (a call of a few microseconds then does not wait, on its
    return, for a busy thread to hand the GIL back: up to 5 ms, Python's switch interval).

    Looked up among the symbols the process has loaded (the interpreter is linked with its C
    library), not by the library's name: ``ctypes.util.find_library`` runs ``ldconfig -p``, a
    process of its own, at the start of every command."""
    try:
        return getattr(ctypes.PyDLL(None) if keep_gil else ctypes.CDLL(None), name)
    except (OSError, AttributeError, TypeError):
        return None


def tune_malloc(mmap_threshold: int = 256 << 10, arenas: int = 2) -> bool:
    """Returns False where the C library is not glibc (nothing to tune)."""
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_ARENA_MAX, arenas))


@functools.cache
def _malloc_trim() -> Any:
    trim = _glibc_function("malloc_trim", keep_gil=True)
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
    return trim


def trim_malloc() -> bool:
    """Gives the kernel back the free pages inside every malloc heap, not only at their tops
    (glibc's ``malloc_trim``: a few milliseconds for tens of MiB, well under one when little is
    free; the GIL is held meanwhile). Returns whether any memory was given back (False where
    the C library is not glibc)."""
    trim = _malloc_trim()
    return trim is not None and bool(trim(0))


def lazy_buffer(size: int) -> memoryview:
    """A zero-filled buffer whose pages become resident only as they are first written: an
    anonymous mapping (``bytearray(size)`` writes every page at once). For buffers kept per
    thread or pooled, sized for the largest case and mostly used in part. Private: a process
    forked from this one (a backup's reading process) writes its own copy, never this one's
    (``mmap``'s default, a shared mapping, would be both processes' one buffer)."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    return memoryview(mmap.mmap(-1, size, flags=flags))


class ThreadBuffer:
    """One ``lazy_buffer`` of ``capacity`` bytes per thread, reused from call to call; a larger
    request gets a buffer of its own, not kept."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._local = threading.local()

    def get(self, size: int) -> memoryview:
        """``size`` bytes of this thread's buffer: valid until the thread's next ``get``."""
        if size > self.capacity:
            return memoryview(bytearray(size))
        buf: memoryview | None = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = lazy_buffer(self.capacity)
        return buf[:size]
