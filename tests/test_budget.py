"""What fits in --memory-limit (cairn.app.budget): pure decisions, checked at their edges."""

from __future__ import annotations

import pytest

from cairn.app.budget import (
    READER_BYTES,
    RESTORE_FIXED,
    RESTORE_THREAD,
    repack_budget,
    restore_budget,
    whole_pack_reads,
    write_budget,
)
from cairn.core.errors import UsageError

MIB = 1 << 20


def test_packs_stay_in_memory_only_where_they_fit_or_the_backend_prefers_files():
    fits = 2 * READER_BYTES + 5 * 40 * MIB
    assert write_budget(fits, 40 * MIB, 4, 2).spool is None
    assert write_budget(fits - 1, 40 * MIB, 4, 2).spool is not None
    assert write_budget(None, 8 * MIB, 1, 2).spool is None  # a local repository's default
    assert write_budget(None, 8 * MIB, 1, 2, spool=True).spool is not None  # an object store
    assert write_budget(64 * MIB, 40 * MIB, 4, 2).uploads == 4  # files cost no memory
    with pytest.raises(UsageError, match="too small"):
        write_budget(48 * MIB, 8 * MIB, 1, 3)
    with pytest.raises(UsageError, match="at least 48 MiB"):
        write_budget(47 * MIB, 8 * MIB, 1, 1)


def test_restore_threads_and_whole_pack_reads_fit_the_limit():
    assert restore_budget(None, 8).threads == 8
    assert restore_budget(RESTORE_FIXED + 3 * RESTORE_THREAD, 8).threads == 3
    assert restore_budget(48 * MIB, 8).threads == 1
    assert whole_pack_reads(None, 40 * MIB, 4) == 4
    assert whole_pack_reads(RESTORE_FIXED + 3 * 40 * MIB, 40 * MIB, 4) == 2
    assert whole_pack_reads(64 * MIB, 40 * MIB, 4) == 1


def test_a_prune_reads_fewer_packs_at_once_rather_than_refuse():
    budget, reads = repack_budget(None, 8 * MIB, 2, 2, spool=False)
    assert (budget.spool, reads) == (None, 2)
    budget, reads = repack_budget(60 * MIB, 32 * MIB, 2, 2, spool=False)
    assert budget.spool is not None and reads == 1  # one 32 MiB pack held, packs in files
    with pytest.raises(UsageError, match="too small"):
        repack_budget(48 * MIB, 40 * MIB, 2, 2, spool=True)
