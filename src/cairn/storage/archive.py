"""Stores with storage classes and archived objects (Amazon S3's GLACIER and DEEP_ARCHIVE).

Not part of the ``Storage`` protocol: only a store that has storage classes implements
``ArchiveStore``, and callers find it below the wrappers with ``find_archive``.

- ``list_with_class(prefix)`` yields an ``ObjectInfo`` (name, size, storage class, last
  modified) for every object under ``prefix``, as a ``list`` would, from the same listing.
- An archived object (class in ``ARCHIVE_CLASSES``) cannot be read until a restore request
  made a temporary copy: ``read`` raises ``ObjectArchived``.
- ``request_restore(name, days, tier)`` asks for a copy readable for ``days`` days; asking
  again while a restore is in progress is not an error.
- ``restore_status(name)`` tells whether an archived object is readable now (``RESTORED``),
  being restored (``RESTORING``), or neither (``ARCHIVED``); ``READABLE`` for objects that are
  not archived at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from cairn.storage.retry import RetryingStorage

ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
RESTORE_TIERS = ("Expedited", "Standard", "Bulk")

READABLE = "readable"
ARCHIVED = "archived"
RESTORING = "restoring"
RESTORED = "restored"


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    storage_class: str
    modified: datetime | None  # None when the store does not say


@runtime_checkable
class ArchiveStore(Protocol):
    def list_with_class(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def request_restore(self, name: str, days: int, tier: str) -> None: ...

    def restore_status(self, name: str) -> str: ...


def find_archive(storage: object) -> ArchiveStore | None:
    """The store with storage classes below a stack of wrappers, or None (a local directory).
    Its calls are retried as the stack's retry wrapper retries the others."""
    retry: RetryingStorage | None = None
    while storage is not None:
        if isinstance(storage, ArchiveStore):
            return storage if retry is None else _Retried(storage, retry)
        if isinstance(storage, RetryingStorage):
            retry = storage
        storage = getattr(storage, "inner", None)
    return None


class _Retried:
    """An ArchiveStore whose calls are retried by a RetryingStorage's policy."""

    def __init__(self, inner: ArchiveStore, retry: RetryingStorage) -> None:
        self._inner = inner
        self._retry = retry

    def list_with_class(self, prefix: str) -> Iterator[ObjectInfo]:
        return self._retry.policy.iterate(
            lambda: self._inner.list_with_class(prefix), lambda info: info.name
        )

    def request_restore(self, name: str, days: int, tier: str) -> None:
        self._retry.policy.call(lambda: self._inner.request_restore(name, days, tier))

    def restore_status(self, name: str) -> str:
        return self._retry.policy.call(lambda: self._inner.restore_status(name))
