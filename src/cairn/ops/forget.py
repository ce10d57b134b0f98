"""Forget: remove snapshot objects, chosen by a retention policy or by id.

Only ``snapshots/<id>`` objects are deleted; the data they used stays until a prune. Forget
needs no lock: a backup never depends on another snapshot existing, and a prune that runs at
the same time only ever finds fewer snapshots than it planned with, so it keeps more, not less.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo

from cairn.core.errors import IntegrityError
from cairn.model.snapshot import Snapshot
from cairn.ops.retention import Decision, GroupKey, GroupResult, Policy, apply_policy
from cairn.ops.snapshots import (
    SnapshotFilter,
    decode_snapshot,
    load_snapshots,
    resolve,
    resolve_id,
)
from cairn.repo import layout
from cairn.repo.repository import Repository


def plan_by_policy(
    repo: Repository,
    policy: Policy,
    *,
    now: datetime,
    group_by: Iterable[str],
    flt: SnapshotFilter | None = None,
    tz: tzinfo | None = None,
) -> list[GroupResult[Snapshot]]:
    """Every snapshot that passes ``flt``, grouped, each decided by ``policy``."""
    snaps = load_snapshots(repo, flt)
    return apply_policy(snaps, policy, now=now, group_by=group_by, tz=tz)


def plan_by_ids(repo: Repository, refs: Sequence[str]) -> list[GroupResult[Snapshot]]:
    """One group with exactly the named snapshots (ids, unique prefixes, ``latest``), all to be
    removed. Every name is resolved before anything is deleted: one bad name, nothing goes."""
    found: dict[str, Snapshot] = {}
    for ref in refs:
        snap = resolve(repo, ref) if ref == "latest" else _by_id(repo, resolve_id(repo, ref))
        found[snap.id] = snap
    ordered = sorted(found.values(), key=lambda s: (s.time, s.id), reverse=True)
    return [GroupResult(GroupKey(), [Decision(s) for s in ordered])]


def _by_id(repo: Repository, hex_id: str) -> Snapshot:
    """The snapshot, or a stand-in naming it when its object is damaged: a damaged snapshot
    can always be forgotten."""
    try:
        return decode_snapshot(hex_id, repo.load_snapshot(hex_id))
    except IntegrityError as e:
        return Snapshot(
            time=datetime.fromtimestamp(0, UTC),
            host="?",
            user="?",
            paths=[f"(damaged snapshot object: {e.detail})"],
            tree=b"",
            id=hex_id,
        )


def remove_snapshots(repo: Repository, snaps: Iterable[Snapshot]) -> int:
    n = 0
    for snap in snaps:
        repo.storage.delete(layout.snapshot_name(snap.id))
        n += 1
    return n
