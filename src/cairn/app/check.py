"""The check use case: verify that every snapshot can be restored (structure, and data on
request). Repairing what it finds is app.repair's."""

from __future__ import annotations

from cairn.app.budget import whole_pack_reads
from cairn.app.context import Session
from cairn.app.events import Events
from cairn.core.errors import UsageError
from cairn.ops.check import Checker, CheckReport, Subset
from cairn.repo.lockrule import lock_rule

__all__ = ["CheckReport", "check"]


def check(
    session: Session, events: Events, read_data: bool = False, subset: str | None = None
) -> CheckReport:
    """``read_data``: read every pack; ``subset`` ("10%" or "n/m"): only that share of them."""
    selected = None
    if subset:
        try:
            selected = Subset.parse(subset)
        except ValueError as e:
            raise UsageError(f"--read-data-subset {subset}: use {e}") from None
    elif read_data:
        selected = Subset()
    defaults = session.defaults
    data_threads = 0
    if selected is not None:
        data_threads = whole_pack_reads(
            session.spec.store.memory_limit, session.repo.config.pack_size, defaults.uploads
        )
        if data_threads > 1:
            events.status(f"reading {data_threads} packs at a time")
    session.repo.detach_cache()  # what the store holds is checked, not this host's copies
    lock = lock_rule(session.repo.config)
    return Checker(session.repo, events, defaults.tree_threads, data_threads, lock).run(selected)
