"""The memory a command may spend on its buffers (``--memory-limit``), and how it spends it.

What a command holds beyond the interpreter and the repository's index (which grows with the
repository, about 48 bytes a blob: docs/performance.md):

- a backup: per reading thread a chunker buffer (twice the largest chunk, plus a read) and a
  framing buffer (the largest chunk); the data packs being filled and uploaded, in memory
  ``(uploads + 1) * pack size``, or, built in temporary files, one staging buffer as large as
  the largest chunk whatever the pack size and uploads;
- a restore: its windows' plans, the trees read ahead, and per thread a read buffer and a
  decryption buffer;
- a prune: the pack being repacked and its writer's packs, as a backup's.

Each command works out what fits in the limit, falls back to temporary files and fewer threads
where the fast choice does not fit, and says at the start what it chose. The default suits a
machine with 1 GiB of memory. On an object store a backup builds its packs in temporary files
whatever the limit (as restic does): the uploads, which wait on the network, then cost no
memory, and nothing is slower for it (docs/performance.md).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from cairn.core.errors import UsageError
from cairn.core.memory import MIN_MEMORY_LIMIT
from cairn.repo.packer import STAGE_BYTES, Spool

DEFAULT_LIMIT = 256 << 20
MIB = 1 << 20
# a reading thread's own buffers: its chunker's (twice the largest chunk and a read), its
# framing buffer (the largest chunk) and its compressor's context
READER_BYTES = 3 * (4 << 20) + (1 << 20) + (2 << 20)
# the restore's: the plans of three windows (the one read, the next, the one being planned:
# about 10 MiB) and the trees read ahead (cairn.ops.restore.packorder, cairn.ops.treefetch),
# then per thread a read and the blob it decrypts (large and small reads)
RESTORE_FIXED = (13 << 20) + (32 << 20)
RESTORE_THREAD = (8 << 20) + (4 << 20) + (512 << 10) + (4 << 20)


def _mib(n: int) -> str:
    return f"{n / MIB:.0f} MiB"


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < MIN_MEMORY_LIMIT:
        raise UsageError(f"--memory-limit must be at least {_mib(MIN_MEMORY_LIMIT)}")
    return limit


@dataclass(frozen=True)
class WriteBudget:
    """How a command that writes packs (backup, prune) fits its buffers into ``limit``."""

    limit: int
    uploads: int
    spool: Spool | None  # None: packs are built in memory

    def describe(self) -> str:
        where = (
            "in memory"
            if self.spool is None
            else f"in temporary files in {self.spool.directory or tempfile.gettempdir()}"
        )
        return (
            f"memory limit {_mib(self.limit)}: {self.uploads} uploads in flight, "
            f"data packs built {where}"
        )


def write_budget(
    limit: int | None,
    pack_size: int,
    uploads: int,
    readers: int,
    spool: bool = False,
    held: int = 0,
) -> WriteBudget:
    """Packs in memory unless ``spool`` (the backend's default) or unless ``uploads + 1`` of
    them do not fit beside the readers' buffers and ``held`` bytes the command holds besides;
    else in temporary files (in the system's temporary directory: $TMPDIR)."""
    limit = check_limit(limit)
    others = readers * READER_BYTES + held
    if not spool and others + (uploads + 1) * pack_size <= limit:
        return WriteBudget(limit, uploads, None)
    if others + STAGE_BYTES > limit:
        raise UsageError(
            f"--memory-limit {_mib(limit)} is too small: this command needs about "
            f"{_mib(others + STAGE_BYTES)} (each reading thread "
            f"{_mib(READER_BYTES)}: lower --read-concurrency)"
        )
    return WriteBudget(limit, uploads, Spool())


def reader_process_fits(budget: WriteBudget, pack_size: int, readers: int) -> bool:
    """Whether a backup's reading process (cairn.ops.backup.reader_process) fits in the limit
    beside what ``budget`` holds: a reader's buffers, and the packs it builds as the backup
    does, two of them in memory (one being filled, one handed over) or one staging buffer for
    packs in temporary files."""
    spooled = budget.spool is not None
    held = readers * READER_BYTES + (STAGE_BYTES if spooled else (budget.uploads + 1) * pack_size)
    child = READER_BYTES + (STAGE_BYTES if spooled else 2 * pack_size)
    return held + child <= budget.limit


def repack_budget(
    limit: int | None, pack_size: int, uploads: int, reads: int, spool: bool
) -> tuple[WriteBudget, int]:
    """A prune's: its writer's, and how many of ``reads`` packs it may read whole at once (each
    held until its blobs are copied, one more being copied; one at a time holds just one)."""
    for n in range(max(1, reads), 0, -1):
        held = (n + 1 if n > 1 else 1) * pack_size
        try:
            return write_budget(limit, pack_size, uploads, 0, spool, held), n
        except UsageError:
            if n == 1:
                raise
    raise AssertionError("unreachable")


def whole_pack_reads(limit: int | None, pack_size: int, threads: int) -> int:
    """How many of ``threads`` may each hold a whole pack (check --read-data), with one more
    pack being checked: at least one."""
    limit = check_limit(limit)
    fit = (limit - RESTORE_FIXED) // pack_size - 1
    return max(1, min(threads, fit))


@dataclass(frozen=True)
class RestoreBudget:
    limit: int
    threads: int

    def describe(self) -> str:
        return f"memory limit {_mib(self.limit)}: {self.threads} restore threads"


def restore_budget(limit: int | None, threads: int) -> RestoreBudget:
    """As many of ``threads`` as fit (at least one)."""
    limit = check_limit(limit)
    fit = (limit - RESTORE_FIXED) // RESTORE_THREAD
    return RestoreBudget(limit, max(1, min(threads, fit)))
