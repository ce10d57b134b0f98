"""The object capability of the in-memory store (cairn.storage.memory), for tests: objects
that are overwritten, created only if absent and copied, with S3's ETags (the MD5 of the
bytes for a single PUT or a copy, the MD5 of the parts' MD5s and their count for an upload in
parts); and, with a ``Multipart`` plan, uploads in parts that stay until completed or
aborted, as on S3, so that resuming one runs without a server."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from cairn.core.errors import StorageError
from cairn.storage.base import Content, content_chunks
from cairn.storage.objectops import ObjectOps
from cairn.storage.objects import (
    DEFAULT_TYPE,
    Multipart,
    ObjectHead,
    Part,
    PendingUpload,
    UploadMissing,
)

if TYPE_CHECKING:  # the store constructs its capability, and hands itself in
    from cairn.storage.memory import MemoryStorage


@dataclass
class _Upload:
    name: str
    content_type: str
    cold: bool
    initiated: datetime
    parts: dict[int, tuple[Part, bytes]] = field(default_factory=dict)


class MemoryObjects(ObjectOps):
    def __init__(self, store: MemoryStorage, multipart: Multipart | None) -> None:
        self.store = store
        self.multipart = multipart
        self._uploads: dict[str, _Upload] = {}  # by upload id

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        obj = self.store.new_object(data, cold=cold, content_type=content_type)
        with self.store._lock:
            self.store._objects[name] = obj
        return obj.etag

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool:
        obj = self.store.new_object(data, cold=False, content_type=content_type)
        with self.store._lock:
            return self.store._objects.setdefault(name, obj) is obj

    def head(self, name: str) -> ObjectHead | None:
        with self.store._lock:
            obj = self.store._objects.get(name)
        return None if obj is None else ObjectHead(len(obj.data), obj.etag, obj.content_type)

    def copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        source = self.store._readable(src)  # an archived object cannot be copied, as on S3
        obj = self.store.new_object(source.data, cold=cold, content_type=content_type)
        with self.store._lock:
            self.store._objects[dst] = obj
        return obj.etag

    # ------------------------------------------------------------------ uploads in parts
    def start_upload(self, name: str, *, content_type: str, cold: bool = False) -> str:
        if self.multipart is None:
            raise StorageError(f"{name}: this store takes no uploads in parts")
        upload_id = secrets.token_hex(8)
        with self.store._lock:
            self._uploads[upload_id] = _Upload(name, content_type, cold, self.store._now())
        return upload_id

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part:
        content = b"".join(bytes(c) for c in content_chunks(data))
        etag = f'"{hashlib.md5(content, usedforsecurity=False).hexdigest()}"'
        part = Part(number, etag, len(content))
        with self.store._lock:
            self._upload(name, upload_id).parts[number] = (part, content)
        return part

    def copy_part(
        self, name: str, upload_id: str, number: int, src: str, start: int, length: int
    ) -> Part:
        source = self.store._readable(src)
        return self.upload_part(name, upload_id, number, source.data[start : start + length])

    def list_parts(self, name: str, upload_id: str) -> dict[int, Part] | None:
        with self.store._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or upload.name != name:
                return None
            return {n: part for n, (part, _) in upload.parts.items()}

    def complete_upload(self, name: str, upload_id: str, parts: Sequence[Part]) -> str:
        with self.store._lock:
            upload = self._upload(name, upload_id)
            chunks, digests = [], b""
            for part in parts:
                held = upload.parts.get(part.number)
                if held is None or held[0].etag != part.etag:
                    raise StorageError(f"{name}: InvalidPart: part {part.number} is not there")
                chunks.append(held[1])
                digests += bytes.fromhex(part.etag.strip('"'))
            del self._uploads[upload_id]
        obj = self.store.new_object(
            b"".join(chunks), cold=upload.cold, content_type=upload.content_type
        )
        md5 = hashlib.md5(digests, usedforsecurity=False).hexdigest()
        obj = replace(obj, etag=f'"{md5}-{len(parts)}"')
        with self.store._lock:
            self.store._objects[name] = obj
        return obj.etag

    def abort(self, name: str, upload_id: str) -> None:
        with self.store._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and upload.name == name:
                del self._uploads[upload_id]

    def uploads(self, prefix: str) -> Iterator[PendingUpload]:
        with self.store._lock:
            found = [
                PendingUpload(u.name, upload_id, u.initiated)
                for upload_id, u in self._uploads.items()
                if u.name.startswith(prefix)
            ]
        return iter(sorted(found, key=lambda u: (u.name, u.upload_id)))

    def listing(self, prefix: str) -> Iterator[tuple[str, ObjectHead]]:
        with self.store._lock:
            found = [
                (name, ObjectHead(len(obj.data), obj.etag))
                for name, obj in self.store._objects.items()
                if name.startswith(prefix)
            ]
        return iter(found)

    def _upload(self, name: str, upload_id: str) -> _Upload:
        """The upload (the store's lock held), or UploadMissing."""
        upload = self._uploads.get(upload_id)
        if upload is None or upload.name != name:
            raise UploadMissing(name, upload_id)
        return upload
