"""What every object store does alike on top of its primitives (cairn.storage.objects): the
upload in parts and its resume, and the clean-up of unfinished uploads. Backends and wrappers
inherit it, so the parts of an upload go through the whole wrapper stack one by one.

An upload in parts, with a journal:

1. ``journal.lookup(name)`` names an upload under way: ``list_parts`` says which of its parts
   the store still has. A part counts as done only if the store lists it with the ETag and
   size the journal recorded, and the bytes this ``put`` would send as that part are those
   the journal recorded (their CRC32 where it kept one, else the MD5 a plain ETag is): a part
   that differs is sent again. An upload the store no longer knows is started again.
2. Otherwise ``start_upload``, told to ``journal.started``.
3. Every part not done goes up (``upload_part``) and is told to ``journal.part_done``.
4. ``complete_upload`` joins them; ``journal.finished``.

A failure leaves the upload as it is for a later resume (an interruption is not a reason to
throw away the parts already sent); ``abort_stale`` drops what is never resumed.

A server-side copy (``server_copy``) is one request, or, where the store copies an object that
large only in parts (S3 over 5 GiB, which says so: ``CopyTooLarge``), a HEAD for its size, a
start, a copy per part (``copy_part``) and the completion. Nothing of it is sent through this
host, so a failed copy in parts is aborted rather than kept for a resume.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from cairn.core.errors import ObjectMissing
from cairn.storage.base import Content, content_chunks, content_size, content_slice
from cairn.storage.objects import (
    COPY_PART,
    DEFAULT_TYPE,
    MAX_PARTS,
    CopyTooLarge,
    Multipart,
    ObjectHead,
    ObjectStore,
    Part,
    PendingUpload,
    UploadJournal,
)


class ObjectOps:
    """``put``, ``server_copy`` and ``abort_stale`` over the primitives of ``ObjectStore``,
    which the class that inherits this provides."""

    multipart: Multipart | None = None
    copy_part_size: int = COPY_PART

    def put(
        self: ObjectStore,
        name: str,
        data: Content,
        *,
        content_type: str,
        cold: bool = False,
        journal: UploadJournal | None = None,
    ) -> str:
        size = content_size(data)
        plan = self.multipart
        if plan is None or size < plan.threshold:
            return self.put_object(name, data, content_type=content_type, cold=cold)
        ranges = plan.ranges(size)
        upload_id, done = _resumable(self, name, journal, data, ranges)
        if upload_id is None:
            upload_id = self.start_upload(name, content_type=content_type, cold=cold)
            if journal is not None:
                journal.started(name, upload_id)
        parts = []
        for number, (start, length) in enumerate(ranges, start=1):
            part = done.get(number)
            if part is None:
                part = self.upload_part(name, upload_id, number, content_slice(data, start, length))
                if journal is not None:
                    journal.part_done(name, upload_id, part)
            parts.append(part)
        etag = self.complete_upload(name, upload_id, parts)
        if journal is not None:
            journal.finished(name)
        return etag

    def server_copy(
        self: ObjectStore, src: str, dst: str, *, content_type: str, cold: bool = False
    ) -> str:
        try:
            return self.copy(src, dst, content_type=content_type, cold=cold)
        except CopyTooLarge:
            pass
        head = self.head(src)
        if head is None:
            raise ObjectMissing(src)
        step = max(self.copy_part_size, -(-head.size // MAX_PARTS))
        upload_id = self.start_upload(dst, content_type=content_type, cold=cold)
        try:
            parts = [
                self.copy_part(dst, upload_id, number, src, start, min(step, head.size - start))
                for number, start in enumerate(range(0, head.size, step), start=1)
            ]
            return self.complete_upload(dst, upload_id, parts)
        except BaseException:
            try:
                self.abort(dst, upload_id)
            except Exception:
                pass
            raise

    def abort_stale(
        self: ObjectStore,
        prefix: str,
        *,
        keep: Collection[str] = (),
        before: datetime | None = None,
    ) -> int:
        """Aborts the unfinished uploads under ``prefix`` but those in ``keep`` (upload ids)
        and, with ``before``, those started since (another writer's, under way); returns how
        many it aborted."""
        stale = [
            u
            for u in self.uploads(prefix)
            if u.upload_id not in keep
            and (before is None or u.initiated is None or u.initiated < before)
        ]
        for upload in stale:
            self.abort(upload.name, upload.upload_id)
        return len(stale)


def _resumable(
    store: ObjectStore,
    name: str,
    journal: UploadJournal | None,
    data: Content,
    ranges: list[tuple[int, int]],
) -> tuple[str | None, dict[int, Part]]:
    """The upload to resume and its parts the store still has that hold the bytes of ``data``
    at ``ranges`` (part 1 first), or (None, {}): also when the journal's parts are not the
    parts ``ranges`` asks for (the part size changed)."""
    lengths = [length for _, length in ranges]
    found = journal.lookup(name) if journal is not None else None
    if found is None:
        return None, {}
    upload_id, recorded = found
    if any(not 0 < p.number <= len(lengths) or p.size != lengths[p.number - 1] for p in recorded):
        return None, {}
    listed = store.list_parts(name, upload_id)
    if listed is None:
        return None, {}  # gone (completed, aborted or expired): start again
    done = {}
    for part in recorded:
        there = listed.get(part.number)
        if there is None or there.etag != part.etag or there.size != part.size:
            continue
        # the checksum as the journal kept it: not every store lists it (SeaweedFS does not)
        part = replace(part, checksum=part.checksum or there.checksum)
        start, length = ranges[part.number - 1]
        if _holds(part, content_slice(data, start, length)):
            done[part.number] = part
    return upload_id, done


_MD5_ETAG = re.compile(r'^"[0-9a-f]{32}"$')


def _holds(part: Part, data: Content) -> bool:
    """Whether the part sent was ``data``: by its CRC32, else by an ETag that is an MD5 (S3's
    ETag of a part; under SSE-KMS or SSE-C it is not, and the part is sent again); True when
    neither tells."""
    if part.checksum:
        crc = 0
        for chunk in content_chunks(data):
            crc = zlib.crc32(chunk, crc)
        return base64.b64encode(crc.to_bytes(4, "big")).decode() == part.checksum
    if _MD5_ETAG.match(part.etag):
        md5 = hashlib.md5(usedforsecurity=False)
        for chunk in content_chunks(data):
            md5.update(chunk)
        return f'"{md5.hexdigest()}"' == part.etag
    return True


class ObjectWrapper(ObjectOps):
    """Base of the wrappers' object capabilities: forwards every primitive to ``inner``;
    subclasses override what they count, cap, retry or fault. ``put`` and ``abort_stale``
    run here, over this wrapper's primitives."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    @property  # type: ignore[override]
    def multipart(self) -> Multipart | None:
        return self.inner.multipart

    @property  # type: ignore[override]
    def copy_part_size(self) -> int:
        return self.inner.copy_part_size

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        return self.inner.put_object(name, data, content_type=content_type, cold=cold)

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool:
        return self.inner.create(name, data, content_type=content_type)

    def head(self, name: str) -> ObjectHead | None:
        return self.inner.head(name)

    def copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        return self.inner.copy(src, dst, content_type=content_type, cold=cold)

    def copy_part(
        self, name: str, upload_id: str, number: int, src: str, start: int, length: int
    ) -> Part:
        return self.inner.copy_part(name, upload_id, number, src, start, length)

    def start_upload(self, name: str, *, content_type: str, cold: bool = False) -> str:
        return self.inner.start_upload(name, content_type=content_type, cold=cold)

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part:
        return self.inner.upload_part(name, upload_id, number, data)

    def list_parts(self, name: str, upload_id: str) -> dict[int, Part] | None:
        return self.inner.list_parts(name, upload_id)

    def complete_upload(self, name: str, upload_id: str, parts: Sequence[Part]) -> str:
        return self.inner.complete_upload(name, upload_id, parts)

    def abort(self, name: str, upload_id: str) -> None:
        self.inner.abort(name, upload_id)

    def uploads(self, prefix: str) -> Iterator[PendingUpload]:
        return self.inner.uploads(prefix)

    def listing(self, prefix: str) -> Iterator[tuple[str, ObjectHead]]:
        return self.inner.listing(prefix)
