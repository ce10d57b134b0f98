"""libfuse 3 through mfusepy, with directory listings that carry their entries' attributes.

mfusepy answers the kernel's READDIRPLUS with names and types only, so the kernel then sends a
LOOKUP for every entry a program touches: one more call into Python per file (a ``tar`` of a
snapshot: 21,000 of them on top of the opens and reads). Here a listing hands libfuse each
entry's full attributes (libfuse then answers the LOOKUPs itself), and each entry's position:
libfuse 3.14 drops the attributes of a listing given all at once, without positions.

The attributes are written into the ``struct stat`` with one ``struct.pack_into`` whose layout
is read from mfusepy's own ``c_stat`` (a ctypes field set at a time costs several times more,
and a listing fills one per entry). And every call keeps the Python thread state of the libfuse
thread it runs on (``_keep_thread_state``).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import struct
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from cairn.core.errors import CairnError

READDIR_PLUS = 1  # enum fuse_readdir_flags: the kernel asks for the attributes with the names
FILL_DIR_PLUS = 2  # enum fuse_fill_dir_flags: the attributes given are complete
# what the file system's attributes name, in the order they are packed
_FIELDS = (
    "st_ino",
    "st_mode",
    "st_nlink",
    "st_uid",
    "st_gid",
    "st_rdev",
    "st_size",
    "st_blksize",
    "st_blocks",
)
_TIMES = ("st_atime", "st_mtime", "st_ctime")
_GIGA = 1_000_000_000


def load() -> ModuleType:
    """mfusepy over libfuse 3 (over 2 when both are installed)."""
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    try:
        return importlib.import_module("mfusepy")
    except (ImportError, OSError) as e:
        raise CairnError(f"cannot load libfuse (install Debian's fuse3): {e}") from None


_kept: set[int] = set()  # the threads whose Python thread state outlives a call


def _keep_thread_state() -> None:
    """Makes the Python thread state of this libfuse thread outlive the call. ctypes gives a
    call from a thread Python did not start a thread state of its own, dropped when the call
    returns, and with it everything the thread kept in ``threading.local``: the blob reader's
    buffer (a fresh 4 MiB mapping for every blob read) and zstd's decompression context. One
    more hold on the state, never released, keeps it for the thread's life (libfuse keeps its
    threads until the file system is unmounted: as many idle as there can be threads)."""
    thread = threading.get_native_id()
    if thread not in _kept:
        _kept.add(thread)
        ctypes.pythonapi.PyGILState_Ensure()


def stat_packer(c_stat: type[ctypes.Structure]) -> Callable[[Any, dict[str, int]], None]:
    """A function writing attributes (times in nanoseconds) into a ``c_stat``; the fields it
    does not name are zeroed."""
    slots: list[tuple[int, int, str, bool]] = []  # offset, size, name, a time's nanoseconds
    for name in _FIELDS:
        field = getattr(c_stat, name)
        slots.append((field.offset, field.size, name, False))
    for name in _TIMES:
        spec = getattr(c_stat, name + "spec")
        timespec = dict(c_stat._fields_)[name + "spec"]
        sec, nsec = timespec.tv_sec, timespec.tv_nsec
        slots.append((spec.offset + sec.offset, sec.size, name, False))
        slots.append((spec.offset + nsec.offset, nsec.size, name, True))
    slots.sort()
    fmt, at = "=", 0
    for offset, size, _, _ in slots:
        fmt += "x" * (offset - at) + {2: "H", 4: "I", 8: "q"}[size]
        at = offset + size
    fmt += "x" * (ctypes.sizeof(c_stat) - at)
    packer = struct.Struct(fmt)
    # each value: the attribute as it is (0), a time's seconds (1) or its nanoseconds (2)
    order = [(name, 0 if name not in _TIMES else 2 if nsec else 1) for _, _, name, nsec in slots]

    def pack(st: Any, attrs: dict[str, int]) -> None:
        get = attrs.get
        packer.pack_into(
            st,
            0,
            *[
                get(name, 0) if kind == 0 else divmod(get(name, 0), _GIGA)[kind - 1]
                for name, kind in order
            ],
        )

    return pack


def fuse_class(fuse: ModuleType) -> type:
    """mfusepy's ``FUSE`` whose listings come from the file system's ``entries(path, plus,
    start)``: the entries from the ``start``-th on, as (name, attributes, whether they are
    complete); ``plus``: the kernel takes complete attributes (else only the inode number and
    the mode are used)."""
    pack = stat_packer(fuse.c_stat)

    class ListingFUSE(fuse.FUSE):  # type: ignore[name-defined,misc]
        def _wrapper(self, func: Any, *args: Any, **kwargs: Any) -> Any:
            _keep_thread_state()
            return super()._wrapper(func, *args, **kwargs)

        def readdir_fuse_3(
            self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any, flags: int
        ) -> int:
            st = fuse.c_stat()
            entries = self.operations.entries(
                None if path is None else path.decode(self.encoding, self.errors),
                bool(flags & READDIR_PLUS),
                offset,
            )
            for at, (name, attrs, complete) in enumerate(entries, offset + 1):
                if complete:
                    pack(st, attrs)
                else:  # libfuse reads only these two of the others
                    st.st_ino, st.st_mode = attrs["st_ino"], attrs["st_mode"]
                if filler(buf, name, st, at, FILL_DIR_PLUS if complete else 0) != 0:
                    break  # the kernel's buffer is full
            return 0

    return ListingFUSE
