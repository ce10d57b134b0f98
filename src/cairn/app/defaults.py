"""Per-backend defaults: the one table of what differs between an object store and a local
directory. The code reads it, and the command line renders it into --help.

Object stores bill per request and answer each one a round trip later, so they get large packs,
several uploads in flight and many restore threads; a local disk is fastest with one pack
writer and few threads (docs/performance.md measures each choice).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.core.urls import LOCAL_DIRECTORY, OBJECT_STORE, store_kind
from cairn.repo.config import DEFAULT_LOCAL_PACK_SIZE, DEFAULT_PACK_SIZE
from cairn.repo.ranges import LOCAL_GAP

S3, LOCAL = OBJECT_STORE, LOCAL_DIRECTORY


@dataclass(frozen=True)
class BackendDefaults:
    kind: str
    pack_size: int  # bytes, for a new repository
    uploads: int  # packs in flight during a backup (each held in memory)
    restore_threads: int  # threads writing restored files (large files' parts)
    # threads of their own for batches of small files (None: the restore threads take them):
    # from a local disk a small file is mostly Python work and system calls, and two threads
    # on them mostly hand the GIL to each other; on S3 each waits a round trip
    small_file_threads: int | None
    # restore each pack's blobs once for a window of files (many requests in flight, each
    # filling the link), rather than file by file (cairn.ops.restore.packorder)
    pack_order: bool
    # a restore reads through a gap this small between the blobs it needs rather than make
    # another request (on an object store at most this: less where egress is dear, see
    # app.restore.read_gap)
    read_gap: int
    # threads reading trees ahead of a walk (restore, dump, ls): each tree read waits a round
    # trip on an object store; none from a local disk, where it is there at once
    tree_threads: int
    # data packs built in temporary files rather than in memory (cairn.app.budget): uploads to
    # an object store wait on the network, and (connections + 1) packs of 40 MiB would be
    # held meanwhile; a local disk takes small packs at once
    spool_packs: bool
    # threads sending a step's requests that do not depend on one another at once (opening:
    # the config and the key files; a backup: its lock and the snapshots, then the locks and
    # the index; the snapshots and the locks are read at once): each waits a round trip on an
    # object store; none for a local directory, where they are made one after another
    request_threads: int
    # the index objects, snapshots and tree packs kept in the cache directory and read from
    # there (cairn.repo.objectcache): on an object store each is a request, egress and a round
    # trip, read again by every command; a local directory is already local
    object_cache: bool
    # the first data pack of a backup into a repository that holds no pack yet is finished at
    # the repository's pack size divided by this (None: full size), and each next one at twice
    # the one before up to the pack size, so that the uploads start that much sooner: on an
    # object store the link waits, from the opening, for the first packs to fill; later
    # backups, which find packs in the repository, fill full packs from the start (two PUTs
    # more, at most, on the repository's first backup only)
    first_pack_divisor: int | None


DEFAULTS = {
    S3: BackendDefaults(
        S3,
        DEFAULT_PACK_SIZE,
        uploads=6,
        restore_threads=8,
        small_file_threads=None,
        pack_order=True,
        read_gap=1 << 20,
        tree_threads=16,
        spool_packs=True,
        request_threads=8,
        object_cache=True,
        first_pack_divisor=5,
    ),
    LOCAL: BackendDefaults(
        LOCAL,
        DEFAULT_LOCAL_PACK_SIZE,
        uploads=1,
        restore_threads=2,
        small_file_threads=1,
        pack_order=False,
        read_gap=LOCAL_GAP,
        tree_threads=0,
        spool_packs=False,
        request_threads=0,
        object_cache=False,
        first_pack_divisor=None,
    ),
}


def defaults_for(url: str) -> BackendDefaults:
    return DEFAULTS[store_kind(url)]


def help_text(field: str, unit: str = "") -> str:
    """``field``'s defaults for --help: 'S3: 4, local directory: 1'."""

    def shown(value: object) -> str:
        if isinstance(value, int) and unit == "MiB":
            return f"{value >> 20} MiB"
        return "none" if value is None else f"{value}{unit}"

    return (
        f"default {shown(getattr(DEFAULTS[S3], field))} on S3, "
        f"{shown(getattr(DEFAULTS[LOCAL], field))} for a local directory"
    )
