"""Prune: delete the data no snapshot uses, repacking packs that are mostly unused, safely
while other hosts back up (docs/format.md §12).

``plan``: what the repository holds and what a prune would do (pure, and the dry run);
``run``: the protocol that carries a plan out beside running backups.
"""

from cairn.ops.prune.plan import (
    REPACK_READS,
    PruneOptions,
    PrunePlan,
    PruneReport,
    make_plan,
    plan_prune,
)
from cairn.ops.prune.run import REPACK_UPLOADS, PruneSteps, run_prune

__all__ = [
    "REPACK_READS",
    "REPACK_UPLOADS",
    "PruneOptions",
    "PrunePlan",
    "PruneReport",
    "PruneSteps",
    "make_plan",
    "plan_prune",
    "run_prune",
]
