"""Mounting: the checks that make a failed mount say why in one line, and the FUSE loop.

The binding is mfusepy (ctypes over libfuse 3's high-level API, maintained, on PyPI): it needs
only Debian's fuse3 and libfuse3-3 at run time, no compiler or headers at install time, and
runs the operations on libfuse's own threads, so many readers are served at once (the work of
a read, decryption and decompression, releases the GIL). pyfuse3, the alternative, must be
built against libfuse3-dev and brings an async (trio) event loop that the rest of cairn, which
uses threads, would have to bridge. The binding is imported when a mount starts, so that the
other commands work on a machine without libfuse.

libfuse's loop ends, and the file system is unmounted, on SIGINT (Ctrl-C), SIGTERM, SIGHUP or
``fusermount -u``: libfuse installs its handlers only where a signal has the default action,
so Python's own SIGINT handler is set aside for the time of the mount.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from cairn.core.errors import CairnError, UsageError
from cairn.ops.mount import binding
from cairn.ops.mount.fs import SnapshotFS

DEVICE = "/dev/fuse"
CACHE_SECONDS = 5  # how long the kernel keeps the attributes it was given
IDLE_THREADS = 10  # libfuse's threads kept waiting for requests (libfuse's own default)
ENDED_BY_SIGNAL = 8  # what libfuse 3's fuse_main returns when a signal ended its loop


def check_mountpoint(mountpoint: Path) -> None:
    """UsageError saying why ``mountpoint`` cannot be mounted on, before anything is read."""
    if not mountpoint.exists():
        raise UsageError(f"mount point {mountpoint} does not exist")
    if not mountpoint.is_dir():
        raise UsageError(f"mount point {mountpoint} is not a directory")
    try:
        if any(mountpoint.iterdir()):
            raise UsageError(f"mount point {mountpoint} is not empty")
    except PermissionError:
        raise UsageError(f"mount point {mountpoint}: permission denied") from None
    if not os.path.exists(DEVICE):
        raise CairnError(f"{DEVICE} is missing: this system cannot mount FUSE file systems")
    if not os.access(DEVICE, os.R_OK | os.W_OK) and not _fusermount():
        raise CairnError(f"no permission to use {DEVICE} (and no fusermount3 to mount as a user)")


def _fusermount() -> bool:
    return any(os.access(os.path.join(d, "fusermount3"), os.X_OK) for d in os.defpath.split(":"))


def serve(fs: SnapshotFS, mountpoint: Path, name: str) -> None:
    """Mounts ``fs`` read-only at ``mountpoint`` and serves it until it is unmounted."""
    fuse = binding.load()
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        binding.fuse_class(fuse)(
            fs,
            str(mountpoint),
            foreground=True,
            ro=True,
            use_ino=True,
            fsname=name,
            subtype="cairn",
            default_permissions=True,
            # a snapshot never changes; the namespace's listings are read again within seconds
            entry_timeout=CACHE_SECONDS,
            attr_timeout=CACHE_SECONDS,
            # unset, libfuse 3.14 mistakes its own default for an invalid value and says so on
            # stderr ("Ignoring invalid max threads value 4294967295")
            max_idle_threads=IDLE_THREADS,
        )
    except RuntimeError as e:
        if e.args == (ENDED_BY_SIGNAL,):
            return
        raise CairnError(f"cannot mount at {mountpoint}: {e}") from None
    finally:
        signal.signal(signal.SIGINT, previous)
        fs.close()
