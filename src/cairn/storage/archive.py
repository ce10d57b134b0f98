"""The archive capability: storage classes and archived objects (Amazon S3's GLACIER and
DEEP_ARCHIVE).

A store that has storage classes offers an ``ArchiveStore`` as its ``archive`` (see
cairn.storage.base); a store without them (a local directory) has ``archive = None``. Every
wrapper offers the capability of the store it wraps, wrapped as it wraps the store's own
operations (retried by the retry wrapper, counted by the meter), so a caller takes
``storage.archive`` from the top of the stack:

- ``list_with_class(prefix)`` yields an ``ObjectInfo`` (name, size, storage class, last
  modified) for every object under ``prefix``, as a ``list`` would, from the same listing
  requests (LIST).
- An archived object (class in ``ARCHIVE_CLASSES``) cannot be read until a restore request
  made a temporary copy: ``read`` raises ``ObjectArchived``.
- ``request_restore(name, days, tier)`` asks for a copy readable for ``days`` days (one
  RestoreObject request); asking again while a restore is in progress is not an error, asking
  for an object that is not archived is a ``StorageError``.
- ``restore_status(name)`` tells whether an archived object is readable now (``RESTORED``),
  being restored (``RESTORING``), or neither (``ARCHIVED``); ``READABLE`` for objects that are
  not archived at all (one HEAD request).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

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
