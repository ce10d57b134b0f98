"""The storage contract every backend and wrapper implements.

A store holds immutable named objects. Names are relative paths with '/' separators
('config', 'keys/<id>', 'data/ab/<id>', ...). The contract:

- ``write(name, data, metadata=True)`` stores the whole object atomically: a reader sees
  either nothing or all of it. Objects are write-once; writing an existing name with the same
  content is allowed (it happens when a backup is resumed), callers never write different
  content to a name. ``metadata=False`` marks bulk file data, which a backend may keep in a
  colder (cheaper, slower) storage class; everything else must stay immediately readable.
  ``data`` is ``Content``: bytes in memory, or ``SpooledContent`` (bytes in a file: a pack
  built in a temporary file so that it is not held in memory). A backend reads it through
  ``content_size``, ``content_chunks`` and ``content_reader``, never copying it whole.
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
- ``objects`` is the store's object capability (objects that are overwritten, created only
  if absent, copied and uploaded in resumable parts, with their ETags: what a mirror needs;
  cairn.storage.objects), or None for a store that cannot offer it.
- ``versions`` is the store's versions capability (the versions and delete markers of a
  bucket with versioning, read by version id, copied back on top: cairn.storage.versions),
  or None for a store that keeps no versions.
- ``object_lock`` is the store's object lock capability (retention periods that forbid
  deleting an object version, S3 Object Lock: cairn.storage.objectlock), or None.

Every failure of the store itself is a ``StorageError`` with a one-line message.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cairn.storage.archive import ArchiveStore
from cairn.storage.objectlock import ObjectLockStore

if TYPE_CHECKING:  # the object capability is built on this module's Content
    from cairn.storage.objects import ObjectStore
    from cairn.storage.versions import VersionStore

Buffer = bytes | bytearray | memoryview
CHUNK = 1 << 20  # what ``content_chunks`` yields at a time from a file


class SpooledContent:
    """An object's content in a file rather than in memory: the ``size`` bytes at ``offset``
    (the first ``size`` bytes by default) of the open file ``fd``, which the caller keeps open
    until the write returns. Every reader reads with its own position (``pread``), so a retried
    write reads it again from the start."""

    def __init__(self, fd: int, size: int, offset: int = 0) -> None:
        self.fd = fd
        self.size = size
        self.offset = offset


Content = Buffer | SpooledContent


def content_size(data: Content) -> int:
    if isinstance(data, SpooledContent):
        return data.size
    return len(memoryview(data).cast("B"))


def content_slice(data: Content, start: int, length: int) -> Content:
    """The ``length`` bytes of the content at ``start`` (a part of a multipart upload), copying
    nothing."""
    if isinstance(data, SpooledContent):
        return SpooledContent(data.fd, max(0, min(length, data.size - start)), data.offset + start)
    return memoryview(data).cast("B")[start : start + length]


def content_chunks(data: Content, size: int = CHUNK) -> Iterator[memoryview]:
    """The content in order, as views of at most ``size`` bytes (each valid until the next)."""
    if not isinstance(data, SpooledContent):
        view = memoryview(data).cast("B")
        for start in range(0, len(view), size):
            yield view[start : start + size]
        return
    buf = memoryview(bytearray(min(size, data.size)))
    pos = 0
    while pos < data.size:
        n = os.preadv(data.fd, [buf[: min(size, data.size - pos)]], data.offset + pos)
        if not n:
            raise OSError(f"the spooled content ends at {pos} of {data.size} bytes")
        yield buf[:n]
        pos += n


def content_reader(data: Content) -> io.RawIOBase:
    """A fresh, seekable reader of the content from its start, that copies nothing up front:
    for HTTP clients that send a body from a file-like object."""
    return _ContentReader(data)


class _ContentReader(io.RawIOBase):
    def __init__(self, data: Content) -> None:
        self._data = data
        self._view = None if isinstance(data, SpooledContent) else memoryview(data).cast("B")
        self._size = content_size(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, out: memoryview) -> int:  # type: ignore[override]
        n = max(0, min(len(out), self._size - self._pos))
        if not n:
            return 0
        if self._view is not None:
            out[:n] = self._view[self._pos : self._pos + n]
        else:
            assert isinstance(self._data, SpooledContent)
            n = os.preadv(self._data.fd, [memoryview(out)[:n]], self._data.offset + self._pos)
        self._pos += n
        return n


@runtime_checkable
class Storage(Protocol):
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    def read_into(self, name: str, offset: int, out: memoryview) -> int: ...

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None: ...

    def stat(self, name: str) -> int: ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]: ...

    def delete(self, name: str) -> None: ...

    def describe(self) -> str: ...

    @property
    def archive(self) -> ArchiveStore | None: ...

    @property
    def objects(self) -> ObjectStore | None: ...

    @property
    def versions(self) -> VersionStore | None: ...

    @property
    def object_lock(self) -> ObjectLockStore | None: ...


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

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
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

    @property
    def objects(self) -> ObjectStore | None:
        # as it is; the wrappers that count, cap, retry or fault its calls wrap it
        return self.inner.objects

    @property
    def versions(self) -> VersionStore | None:
        # as it is; the meter and the retry wrapper wrap it
        return self.inner.versions

    @property
    def object_lock(self) -> ObjectLockStore | None:
        # as it is; the wrappers that count or retry its calls wrap it
        return self.inner.object_lock


def read_into_by_read(storage: Storage, name: str, offset: int, out: memoryview) -> int:
    """``read_into`` for a store whose reads come as new buffers anyway (a response body)."""
    if not len(out):
        return 0
    data = storage.read(name, offset, len(out))
    n = min(len(data), len(out))
    out[:n] = memoryview(data)[:n]
    return n
