"""Keeping a snapshot's data locked for as long as its object lock says (docs/objectlock.md).

Every object cairn writes to a repository with an object lock is locked from its writing for
DAYS + a margin (``RetentionRule.keep_until``; the store does that, cairn.storage.objectlock).
What a backup re-uses was written earlier, and its lock may end before the new snapshot's
(now + DAYS): ``keep_locked`` extends it, before the snapshot is saved, to now + DAYS + the
margin, so that a daily backup of an unchanged tree extends a given object once per margin,
not every day. It considers what every snapshot may need: the config, the keys, every index
object and every pack the index lists (the packs of forgotten snapshots too, until a prune
removes them: finding the packs of one snapshot would mean reading all its trees).

Where the retain-until dates come from, without a request per object per backup: what this
process wrote and extended, and the host's cache of them (cairn.repo.retentioncache); an
object neither knows (the cache is missing, another host wrote it) is asked of the store once
(GetObjectRetention, a GET-class request), and remembered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cairn.core.errors import CairnError, ObjectMissing, StorageError
from cairn.core.overlap import Overlap
from cairn.repo import layout
from cairn.repo.lockrule import lock_rule
from cairn.repo.repository import Repository
from cairn.repo.retentioncache import RetentionCache
from cairn.storage.objectlock import ObjectLockStore, RetentionRule


def noncurrent_days(rule: RetentionRule) -> int:
    """How long the lifecycle rule keeps a version after it stopped being current: as long
    as the latest lock cairn sets (DAYS + the margin), so it never waits on a lock."""
    return rule.days + rule.margin.days


def deleted_kept_until(rule: RetentionRule, now: datetime) -> datetime:
    """Until when an object deleted at ``now`` keeps its version (a DELETE only adds a
    delete marker): no lock cairn set ends later, and the lifecycle rule removes it then."""
    return rule.keep_until(now)


@dataclass
class LockUpkeep:
    """What ``keep_locked`` did: ``objects`` considered, ``asked`` the store for the dates of
    objects it did not know (one GetObjectRetention each), ``extended`` (one
    PutObjectRetention each)."""

    objects: int = 0
    asked: int = 0
    extended: int = 0
    needed: datetime | None = None  # every object is locked at least until this
    extended_to: datetime | None = None
    dry_run: bool = False  # ``extended``: what it would extend

    def as_dict(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "asked": self.asked,
            "extended": self.extended,
            "locked_until": self.needed.isoformat() if self.needed else None,
            "extended_to": self.extended_to.isoformat() if self.extended_to else None,
            "dry_run": self.dry_run,
        }

    def describe(self) -> str:
        """One line: what the upkeep made sure of."""
        until = f"{self.needed:%Y-%m-%d %H:%M} UTC" if self.needed else "?"
        if self.dry_run:
            return (
                f"object lock: would extend {self.extended} of {self.objects} objects "
                f"to keep them locked until {until}"
            )
        line = f"object lock: {self.objects} objects locked until {until} at least"
        if self.extended and self.extended_to is not None:
            line += f"; {self.extended} extended to {self.extended_to:%Y-%m-%d %H:%M} UTC"
        return line


def active_lock(repo: Repository) -> RetentionRule | None:
    """The repository's object lock (its config's), if its store can keep it: None for a
    repository without one, and for a copy on a store that cannot lock (a directory)."""
    rule = lock_rule(repo.config)
    return rule if rule is not None and repo.storage.object_lock is not None else None


def locking(repo: Repository) -> ObjectLockStore:
    lock = repo.storage.object_lock
    if lock is None:
        raise CairnError(f"{repo.storage.describe()} cannot hold locked objects")
    return lock


def needed_objects(repo: Repository) -> list[str]:
    """The objects every snapshot may need: config, keys, index objects, indexed packs."""
    names = [layout.CONFIG]
    names += [n for n, _ in repo.storage.list(layout.KEYS)]
    names += [n for n, _ in repo.storage.list(layout.INDEX)]
    names += [layout.pack_name(p.id.hex()) for p in repo.index.packs]
    return names


def keep_locked(
    repo: Repository,
    rule: RetentionRule,
    cache: RetentionCache | None,
    now: datetime,
    names: Iterable[str] | None = None,
    dry_run: bool = False,
) -> LockUpkeep:
    """Extends every object among ``names`` (default: ``needed_objects``) whose lock ends
    before ``now`` + DAYS to ``rule.keep_until(now)``: one request per such object, none for
    the others (but one to ask the date of an object this host knows nothing of). A
    ``dry_run`` counts what it would extend, extends nothing and keeps the cache as it is."""
    lock = locking(repo)
    wanted = list(dict.fromkeys(needed_objects(repo) if names is None else names))
    known = cache.load() if cache is not None else {}
    known.update(lock.written())
    needed = rule.until(now)
    upkeep = LockUpkeep(objects=len(wanted), needed=needed)
    unknown = [n for n in wanted if n not in known]
    upkeep.asked = len(unknown)
    for name, until in lock_ends(repo, unknown).items():
        if until is not None:
            known[name] = until
    target = rule.keep_until(now)
    short = [n for n in wanted if n not in known or known[n] < needed]
    if dry_run:
        upkeep.extended, upkeep.dry_run = len(short), True
        return upkeep
    with Overlap(repo.request_threads) as overlap:
        for name, done in overlap.map(lambda n: _extend(lock, n, target, needed), short):
            until = done.result()
            if until is not None:
                known[name] = until
                upkeep.extended += until == target
    if upkeep.extended:
        upkeep.extended_to = target
    if cache is not None:
        cache.save({n: known[n] for n in wanted if n in known})
    return upkeep


def _extend(
    lock: ObjectLockStore, name: str, target: datetime, needed: datetime
) -> datetime | None:
    """Extends one object's lock to ``target``; its lock end then, or None if the object is
    gone (a prune removed it meanwhile: nothing left to keep). A store refuses to shorten a
    lock: when another host (its clock ahead) locked it later already, that lock is taken
    (and its end, later than ``target``, returned)."""
    try:
        lock.extend(name, target)
    except ObjectMissing:
        return None
    except StorageError:
        current = lock.retention(name)
        if current is None or current.until < needed:
            raise
        return current.until
    return target


def lock_ends(repo: Repository, names: Iterable[str]) -> dict[str, datetime | None]:
    """Each object's retain-until as the store says now (one GET-class request each, sent at
    once on an object store); None for an object without a retention or gone."""
    lock = locking(repo)
    out: dict[str, datetime | None] = {}
    with Overlap(repo.request_threads) as overlap:
        for name, asked in overlap.map(lock.retention, list(names)):
            try:
                retention = asked.result()
            except ObjectMissing:
                out[name] = None
                continue
            out[name] = retention.until if retention is not None else None
    return out
