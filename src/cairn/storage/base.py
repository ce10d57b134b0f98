"""The storage contract every backend and wrapper implements.

A store holds immutable named objects. Names are relative paths with '/' separators
('config', 'keys/<id>', 'data/ab/<id>', ...). The contract:

- ``write(name, data, metadata=True)`` stores the whole object atomically: a reader sees
  either nothing or all of it. Objects are write-once; writing an existing name with the same
  content is allowed (it happens when a backup is resumed), callers never write different
  content to a name. ``metadata=False`` marks bulk file data, which a backend may keep in a
  colder (cheaper, slower) storage class; everything else must stay immediately readable.
- ``read(name, offset, length)`` returns exactly the requested range (``length=None``: to the
  end) or raises ``ObjectMissing``; a short object is an ``IntegrityError`` for the caller.
- ``read_into(name, offset, out)`` reads the range of ``len(out)`` bytes at ``offset`` into
  ``out`` and returns how many bytes it read (fewer only where the object ends): ``read``
  without a fresh buffer per call, for ranges read in bulk.
- ``stat(name)`` returns the size in bytes or raises ``ObjectMissing``.
- ``list(prefix)`` yields ``(name, size)`` for every object whose name starts with ``prefix``,
  in no particular order.
- ``delete(name)`` removes an object; deleting a missing object is not an error.
- ``archive`` is the store's archive capability (storage classes, restores of archived
  objects: cairn.storage.archive), or None for a store without storage classes. A capability
  is an object a store offers or not, rather than methods every store must have: a wrapper
  offers its inner store's capability, wrapped as it wraps the store (or None).

Every failure of the store itself is a ``StorageError`` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from cairn.storage.archive import ArchiveStore

Buffer = bytes | bytearray | memoryview


@runtime_checkable
class Storage(Protocol):
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    def read_into(self, name: str, offset: int, out: memoryview) -> int: ...

    def write(self, name: str, data: Buffer, *, metadata: bool = True) -> None: ...

    def stat(self, name: str) -> int: ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]: ...

    def delete(self, name: str) -> None: ...

    def describe(self) -> str: ...

    @property
    def archive(self) -> ArchiveStore | None: ...


class StorageWrapper:
    """Base for wrappers: forwards everything to ``inner``; subclasses override what they need."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.read(name, offset, length)

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        # through this wrapper's own ``read``, so a subclass that only changes ``read`` (a
        # fault injector) sees every read; wrappers made for bulk reads forward it instead
        return read_into_by_read(self, name, offset, out)

    def write(self, name: str, data: Buffer, *, metadata: bool = True) -> None:
        self.inner.write(name, data, metadata=metadata)

    def stat(self, name: str) -> int:
        return self.inner.stat(name)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def describe(self) -> str:
        return self.inner.describe()

    @property
    def archive(self) -> ArchiveStore | None:
        # as it is: the archive calls carry no bytes, so e.g. the bandwidth caps leave them be
        return self.inner.archive


def read_into_by_read(storage: Storage, name: str, offset: int, out: memoryview) -> int:
    """``read_into`` for a store whose reads come as new buffers anyway (a response body)."""
    if not len(out):
        return 0
    data = storage.read(name, offset, len(out))
    n = min(len(data), len(out))
    out[:n] = memoryview(data)[:n]
    return n
