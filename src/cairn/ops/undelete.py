"""`repair undelete`: the repository's objects made again what they were at a past time, by
adding versions only (docs/point-in-time.md).

From one listing of every version under the repository (``plan_undelete``, pure), each name
whose entry on top now differs from its entry as of the time (cairn.storage.versions.select)
is changed back:

- it had a version then, and now a delete marker or another version is on top: that version
  is copied on top (``restore_version``). A version on top with the same ETag and size holds
  the same bytes and is left as it is;
- it had none then (or a delete marker), and has a version now (a snapshot or a key added
  since, a stray object): a delete marker is put on top (``hide``).

No version is ever deleted, so whatever undelete does can itself be undone the same way.
Lock objects are left alone: a lock of then is stale now, and a lock of now is someone's.
Operation records (what each run cost, `cairn cost`) are restored but never hidden: those
written since the time record runs that did happen, this undelete's own among them.

The changes run under an exclusive lock (``apply_undelete``). It is a prune lock, whose
condemned packs are those the undelete hides, so that every cairn version honours it: a
backup that starts meanwhile treats them as absent, and another prune or repair refuses to
start. Undelete writes its lock once it has its plan, then refuses if anyone else holds a
fresh lock, and lists the versions again: if the plan changed in between (a backup finished
meanwhile), it changes nothing and says so. The changes go in the repository's write order:
snapshots hidden first, then data restored before the index, the index before the keys,
config and snapshots, and the remaining names hidden last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cairn.ops.progress import Progress
from cairn.repo import layout
from cairn.repo.locks import HeldLock, LockBusy, Locks, new_lock
from cairn.repo.repository import Repository
from cairn.storage.versions import ObjectVersion, VersionStore, current, select

RESTORE = "restore"
HIDE = "hide"
# the order of restores: what a name refers to is back before the name (lower first)
_RANK = {layout.DATA: 0, layout.INDEX: 1, layout.KEYS: 2, layout.SNAPSHOTS: 4}


@dataclass(frozen=True)
class Change:
    name: str
    action: str  # RESTORE or HIDE
    now: ObjectVersion  # the entry on top now
    then: ObjectVersion | None  # the version restored (None for HIDE)


@dataclass
class UndeletePlan:
    restore: list[Change] = field(default_factory=list)
    hide: list[Change] = field(default_factory=list)

    def ordered(self) -> list[Change]:
        """The changes in the order they are made (see the module's docstring)."""
        hide_first = [c for c in self.hide if c.name.startswith(layout.SNAPSHOTS)]
        hide_last = [c for c in self.hide if not c.name.startswith(layout.SNAPSHOTS)]
        restores = sorted(self.restore, key=lambda c: (_rank(c.name), c.name))
        return hide_first + restores + hide_last

    def key(self) -> tuple[tuple[str, str, str], ...]:
        """What the plan does, to compare with a plan made later."""
        return tuple((c.name, c.action, c.now.version_id) for c in self.ordered())


def _rank(name: str) -> int:
    for prefix, rank in _RANK.items():
        if name.startswith(prefix):
            return rank
    return 3


def plan_undelete(entries: Iterable[ObjectVersion], time: datetime) -> UndeletePlan:
    """The changes that make every name (but locks) what it was at ``time``; ``entries`` in
    the store's order (``VersionStore.versions``)."""
    listed = list(entries)
    then = select(listed, time)
    now = current(listed)
    plan = UndeletePlan()
    for name in sorted(now):
        if name.startswith(layout.LOCKS):
            continue
        top, old = now[name], then.get(name)
        if old is not None and (top.deleted or not _same(top, old)):
            plan.restore.append(Change(name, RESTORE, top, old))
        elif old is None and not top.deleted and not name.startswith(layout.OPERATIONS):
            plan.hide.append(Change(name, HIDE, top, None))
    return plan


def _same(a: ObjectVersion, b: ObjectVersion) -> bool:
    return a.version_id == b.version_id or (bool(a.etag) and (a.etag, a.size) == (b.etag, b.size))


@dataclass
class UndeleteReport:
    time: datetime
    restored: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    dry_run: bool = False
    requests: dict[str, int] = field(default_factory=dict)  # all it sent (the opening too)


def apply_undelete(
    repo: Repository,
    versions: VersionStore,
    time: datetime,
    progress: Progress,
    dry_run: bool = False,
) -> UndeleteReport:
    """Plans, and (unless ``dry_run``) makes the changes under the lock. ``repo`` is the
    repository on the store as it is now (its locks are written there)."""
    plan = plan_undelete(versions.versions(""), time)
    report = UndeleteReport(time, dry_run=dry_run)
    if not dry_run and (plan.restore or plan.hide):
        _locked_apply(repo, versions, time, plan, progress)
    for change in plan.ordered():
        (report.restored if change.action == RESTORE else report.hidden).append(change.name)
    return report


def _locked_apply(
    repo: Repository,
    versions: VersionStore,
    time: datetime,
    plan: UndeletePlan,
    progress: Progress,
) -> None:
    condemned = [p for p in (layout.pack_id_of(c.name) for c in plan.hide) if p is not None]
    locks = Locks(repo)
    with HeldLock(locks, new_lock("prune", condemned)) as held:
        others = [lk for lk in locks.read_all(skip=[held.info.name]) if not lk.is_stale()]
        if others:
            raise LockBusy(
                f"a {others[0].describe()} is held; undelete needs the repository alone "
                "(try again once it is released, or stale)"
            )
        if plan_undelete(versions.versions(""), time).key() != plan.key():
            raise LockBusy("the repository changed while undelete planned; run it again")
        for change in plan.ordered():
            held.check_fresh()
            if change.action == RESTORE:
                assert change.then is not None
                v = change.then
                versions.restore_version(change.name, v.version_id, storage_class=v.storage_class)
            else:
                versions.hide(change.name)
            progress.item_done(change.name.encode(), change.then.size if change.then else 0)
