"""The object capability: what a mirror (docs/mirror.md) needs of a store beyond the
repository contract of cairn.storage.base.

A repository's objects are write-once and named by their content, so ``write`` accepts a name
that exists and says nothing. A mirror's objects are files: they are replaced when the file
changes, some must be created only if absent (and the caller must learn whether it created
them), they are copied on the server, and a large one goes up in parts that an interrupted push
resumes. A store that can do this offers an ``ObjectStore`` as its ``objects`` (None
otherwise); every wrapper offers its inner store's, wrapped as it wraps the store (counted,
capped, retried, faulted), so a caller takes ``storage.objects`` from the top of the stack.

- ``put(name, data, *, content_type, cold=False, journal=None)`` creates or replaces the
  object, with its Content-Type (and the colder storage class when ``cold`` and the store has
  one configured, as ``write(metadata=False)``), and returns its ETag as the store gave it.
  Content of at least ``multipart.threshold`` bytes goes up in parts (cairn.storage.objectops).
- ``create(name, data, *, content_type)`` creates the object only if the name is free: True
  if it did, False if the name existed (which it leaves as it is). A store that cannot make
  the write conditional refuses it (``StorageError``) rather than overwrite.
- ``head(name)`` is the object's size, ETag and (where the store keeps one) content type, or
  None when it is missing: one HEAD request.
- ``copy(src, dst, *, content_type, cold=False)`` copies on the server (nothing passes through
  cairn) and returns the new object's ETag. ``ObjectMissing`` when ``src`` is missing.
- ``abort_stale(prefix, keep, before)`` and ``abort(name, upload_id)`` drop unfinished
  multipart uploads, which a failed upload leaves for a later resume rather than aborting.

An ETag is opaque and changes whenever the object is rewritten; ``put``, ``copy`` and
``head`` give the same string for the same object. A local directory, which has no server to
make one, uses ``<inode>-<mtime in ns>-<size>`` of the object's file (docs/mirror.md §1).

The multipart primitives (``start_upload``, ``upload_part``, ``list_parts``,
``complete_upload``, ``uploads``) are part of the capability so that each request of an upload
passes through the wrappers on its own: a part is retried, counted and throttled as a part.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from cairn.core.errors import StorageError

if TYPE_CHECKING:
    from cairn.storage.base import Content

DEFAULT_TYPE = "application/octet-stream"
COPY_LIMIT = 5 << 30  # S3's largest CopyObject source
COPY_PART = 1 << 30  # the parts of a server-side copy in parts (S3 allows 5 MiB to 5 GiB)
MIN_PART = 5 << 20  # S3's smallest part (all but the last)
MAX_PARTS = 10_000  # S3's most parts in one upload
REFUSED_UNCONDITIONAL = "this store ignores conditional writes; pushes to it are refused"


class UploadMissing(StorageError):
    """The store does not know the multipart upload (completed, aborted or expired)."""

    def __init__(self, name: str, upload_id: str) -> None:
        super().__init__(f"{name}: the multipart upload {upload_id} does not exist")
        self.name = name
        self.upload_id = upload_id


class CopyTooLarge(StorageError):
    """The store copies an object this large only in parts (S3: a source over 5 GiB)."""


@dataclass(frozen=True)
class ObjectHead:
    size: int
    etag: str
    content_type: str | None = None  # None where the store keeps none (a local directory)


@dataclass(frozen=True)
class Part:
    """One uploaded part of a multipart upload, as the completion needs it."""

    number: int  # from 1
    etag: str
    size: int
    checksum: str | None = None  # its CRC32 (base64) where the store keeps one


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload started and neither completed nor aborted."""

    name: str
    upload_id: str
    initiated: datetime | None


@dataclass(frozen=True)
class Multipart:
    """When and how a store uploads in parts: content of ``threshold`` bytes or more goes up in
    parts of ``part_size`` bytes (the last one shorter), or of more where ``part_size`` would
    need more than ``MAX_PARTS`` parts. The split is a function of the size alone, so a resumed
    upload splits the content as the interrupted one did."""

    threshold: int
    part_size: int

    def part_size_for(self, size: int) -> int:
        if self.part_size * MAX_PARTS >= size:
            return self.part_size
        least = -(-size // MAX_PARTS)  # ceiling
        return -(-least // (1 << 20)) << 20  # in whole MiB

    def ranges(self, size: int) -> list[tuple[int, int]]:
        """(offset, length) of each part, part 1 first."""
        step = self.part_size_for(size)
        return [(start, min(step, size - start)) for start in range(0, size, step)] or [(0, 0)]


@runtime_checkable
class UploadJournal(Protocol):
    """Where the caller keeps the multipart uploads under way, so that a later ``put`` of the
    same content resumes one. The caller must forget (``finished``) an upload whose content
    changed: a resumed upload trusts the parts the journal lists. It keeps each ``Part`` whole:
    the completion needs the checksums, which not every store lists again."""

    def lookup(self, name: str) -> tuple[str, Sequence[Part]] | None: ...

    def started(self, name: str, upload_id: str) -> None: ...

    def part_done(self, name: str, upload_id: str, part: Part) -> None: ...

    def finished(self, name: str) -> None: ...


@runtime_checkable
class ObjectStore(Protocol):
    @property
    def multipart(self) -> Multipart | None: ...  # None: never in parts

    @property
    def copy_part_size(self) -> int: ...  # the parts of a server-side copy in parts

    def put(
        self,
        name: str,
        data: Content,
        *,
        content_type: str,
        cold: bool = False,
        journal: UploadJournal | None = None,
    ) -> str: ...

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        """One request: ``put`` for content below the multipart threshold."""
        ...

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool: ...

    def head(self, name: str) -> ObjectHead | None: ...

    def copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        """One request; ``CopyTooLarge`` where the store copies ``src`` only in parts."""
        ...

    def server_copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        """A copy on the store's side, in parts where it must be (``ObjectOps``)."""
        ...

    def copy_part(
        self, name: str, upload_id: str, number: int, src: str, start: int, length: int
    ) -> Part:
        """Part ``number`` of upload ``upload_id`` of ``name``: ``length`` bytes of object
        ``src`` from ``start``, copied on the store's side (S3: UploadPartCopy)."""
        ...

    def start_upload(self, name: str, *, content_type: str, cold: bool = False) -> str: ...

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part: ...

    def list_parts(self, name: str, upload_id: str) -> dict[int, Part] | None:
        """The parts uploaded so far; None when the upload does not exist (any more)."""
        ...

    def complete_upload(self, name: str, upload_id: str, parts: Sequence[Part]) -> str:
        """Joins ``parts`` into the object; its ETag. ``UploadMissing`` if the upload is gone."""
        ...

    def abort(self, name: str, upload_id: str) -> None: ...

    def uploads(self, prefix: str) -> Iterator[PendingUpload]: ...

    def listing(self, prefix: str) -> Iterator[tuple[str, ObjectHead]]:
        """Every object under ``prefix`` with its size and ETag (S3: ListObjectsV2, which
        gives both; no content type), in no particular order."""
        ...

    def abort_stale(
        self, prefix: str, *, keep: Collection[str] = (), before: datetime | None = None
    ) -> int: ...
