"""The repository's object lock setting: the ``object_lock`` field of its config
(docs/format.md §3, docs/objectlock.md).

``{"days": DAYS, "mode": "governance" | "compliance"}``: every object written to the
repository is locked for at least DAYS days from its writing, and every backup keeps what its
snapshot needs locked until the snapshot's lock end (its time + DAYS). A config without the
field has no object lock.
"""

from __future__ import annotations

from collections.abc import Mapping

from cairn.core.errors import RepositoryError
from cairn.repo.config import RepoConfig
from cairn.storage.objectlock import MODES, RetentionRule

FIELD = "object_lock"
MAX_DAYS = 36500  # S3's limit on a retention period: 100 years


def lock_rule(config: RepoConfig) -> RetentionRule | None:
    """The rule the config records, or None; a malformed field is a RepositoryError."""
    value = config.extra.get(FIELD)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RepositoryError(f"config: {FIELD} must be a map of days and mode")
    days, mode = value.get("days"), value.get("mode")
    if type(days) is not int or not 1 <= days <= MAX_DAYS:
        raise RepositoryError(f"config: {FIELD}.days must be a whole number from 1 to {MAX_DAYS}")
    if not isinstance(mode, str) or mode.upper() not in MODES:
        raise RepositoryError(f"config: {FIELD}.mode must be governance or compliance")
    return RetentionRule(days, mode.upper())


def lock_field(rule: RetentionRule) -> dict[str, object]:
    """The config's extra fields that record ``rule``."""
    return {FIELD: {"days": rule.days, "mode": rule.mode.lower()}}
