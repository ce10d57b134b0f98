"""The object lock capability: retention periods on stored objects (S3 Object Lock).

In a bucket with Object Lock enabled (always versioned), an object version that carries a
retention cannot be deleted, nor its retention shortened, before its retain-until date, even
with the credentials that wrote it (COMPLIANCE mode: by no one; GOVERNANCE mode: only by a
principal allowed ``s3:BypassGovernanceRetention``). A DELETE without a version id is still
allowed: it adds a delete marker, and the locked version stays, readable by version id, until
its lock ends and a lifecycle rule expires it. That is what makes a backup survive an attacker
holding the backup's own keys.

A store that can hold locked objects (S3) offers an ``ObjectLockStore`` as its
``object_lock`` (see cairn.storage.base), whether or not its bucket has Object Lock enabled
(``bucket_locked`` asks); every other store (a local directory, plain HTTP, memory) has
``object_lock = None``. Wrappers offer the inner
store's capability, wrapped as they wrap the store (retried, counted):

- ``retain_writes(rule)``: from now on every object this store writes (``write``, in one
  request or in parts) carries the retention ``rule`` gives (its mode, until
  ``rule.keep_until(now)``); None: none.
  No request; ``written()`` returns what the writes since then set, name -> retain-until.
- ``bucket_locked()``: whether the bucket has Object Lock enabled (GetObjectLockConfiguration:
  one GET-class request).
- ``retention(name)``: the current version's retention, or None if it has none (one
  GetObjectRetention: a GET-class request); ``ObjectMissing`` if there is no such object.
- ``extend(name, until)``: sets the current version's retain-until to ``until`` in the
  rule's mode (one PutObjectRetention: a PUT-class request). Only ever later: the store
  refuses to shorten a lock.
- ``configure_bucket(rule, noncurrent_days)``: the bucket's default retention (what an
  object written without one gets: a writer that does not know the rule) and, with
  ``noncurrent_days``, the lifecycle rule that expires versions that many days after they
  stopped being current (PutObjectLockConfiguration, PutBucketLifecycleConfiguration).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"
MODES = (GOVERNANCE, COMPLIANCE)


@dataclass(frozen=True)
class RetentionRule:
    """Every object written is locked for at least ``days`` days from its writing, in
    ``mode``: for ``days`` + ``margin`` (``keep_until``), so that what a backup writes today
    needs no extension for the next ``margin`` days (cairn.ops.objectlock)."""

    days: int
    mode: str = GOVERNANCE

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown object lock mode {self.mode!r}")
        if self.days < 1:
            raise ValueError("an object lock lasts at least one day")

    @property
    def margin(self) -> timedelta:
        """A quarter of the lock, at least a day: an object is extended at most once per
        margin, and stays locked at most that much longer than it must."""
        return timedelta(days=max(1, self.days // 4))

    def keep_until(self, now: datetime) -> datetime:
        """What a write or an extension at ``now`` sets: ``days`` + ``margin`` later."""
        return self.until(now) + self.margin

    def until(self, now: datetime) -> datetime:
        """The lock end of an object written at ``now``: ``days`` later, rounded up to the
        second (stores keep whole seconds; rounding down would end the lock early)."""
        return whole_second(now + timedelta(days=self.days))


def whole_second(t: datetime) -> datetime:
    """``t`` rounded up to a whole second."""
    return t if not t.microsecond else t.replace(microsecond=0) + timedelta(seconds=1)


@dataclass(frozen=True)
class Retention:
    mode: str
    until: datetime


@runtime_checkable
class ObjectLockStore(Protocol):
    def retain_writes(self, rule: RetentionRule | None) -> None: ...

    def written(self) -> dict[str, datetime]: ...

    def bucket_locked(self) -> bool: ...

    def retention(self, name: str) -> Retention | None: ...

    def extend(self, name: str, until: datetime) -> None: ...

    def configure_bucket(self, rule: RetentionRule, noncurrent_days: int | None) -> None: ...


class LockWrapper:
    """Base for the wrappers of the capability: forwards everything to ``inner``."""

    def __init__(self, inner: ObjectLockStore) -> None:
        self.inner = inner

    def retain_writes(self, rule: RetentionRule | None) -> None:
        self.inner.retain_writes(rule)

    def written(self) -> dict[str, datetime]:
        return self.inner.written()

    def bucket_locked(self) -> bool:
        return self.inner.bucket_locked()

    def retention(self, name: str) -> Retention | None:
        return self.inner.retention(name)

    def extend(self, name: str, until: datetime) -> None:
        self.inner.extend(name, until)

    def configure_bucket(self, rule: RetentionRule, noncurrent_days: int | None) -> None:
        self.inner.configure_bucket(rule, noncurrent_days)
