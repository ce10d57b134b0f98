"""The object capability of an S3 store (cairn.storage.objects), request by request.

- ``put_object``: PutObject with the Content-Type and a checksum the store verifies; it
  replaces whatever is there. In-memory content (up to ``s3put.LARGEST``) goes up through
  cairn.storage.s3put (obstore, with its SHA-256), other content through botocore (CRC32).
- ``create``: PutObject with ``If-None-Match: *``. A 412 (or a 409 ConditionalRequestConflict:
  another conditional write of the name under way) is False. A store that answers
  NotImplemented does not know conditional writes; it is refused, never written to without
  the condition (the repository's ``write`` falls back to a plain PUT there, which is harmless
  for content-addressed objects, and would let a mirror's second writer overwrite a head).
- ``head``: HeadObject. ``copy``: CopyObject with ``MetadataDirective: REPLACE`` (so that the
  copy gets the content type given). A source over 5 GiB, which CopyObject refuses, is an
  error: copying one in parts (UploadPartCopy) is not implemented.
- Uploads in parts: CreateMultipartUpload, UploadPart (each with its CRC32), ListParts,
  CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads. Content of at least
  ``multipart_threshold`` bytes goes up in parts of ``multipart_chunksize`` (S3Options).
- ETags (of objects and of parts) are given as HTTP gives them, in double quotes, whatever the
  request: SeaweedFS answers a CopyObject with an ETag without them, and a HEAD of the copy
  with them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import botocore.exceptions

from cairn.core.errors import ObjectMissing, StorageError
from cairn.storage.base import Content, content_reader, content_size
from cairn.storage.objectops import ObjectOps
from cairn.storage.objects import (
    COPY_LIMIT,
    DEFAULT_TYPE,
    REFUSED_UNCONDITIONAL,
    CopyTooLarge,
    Multipart,
    ObjectHead,
    Part,
    PendingUpload,
    UploadMissing,
)
from cairn.storage.s3capability import S3Capability
from cairn.storage.s3config import S3Location, S3Options
from cairn.storage.s3errors import error_code, mapped_errors
from cairn.storage.s3put import LARGEST, FastPut

CHECKSUM = "CRC32"
_TAKEN = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_NOT_IMPLEMENTED = frozenset({"NotImplemented", "501"})


class S3Objects(S3Capability, ObjectOps):
    def __init__(
        self,
        client: Any,
        location: S3Location,
        options: S3Options,
        endpoint: str,
        fast: FastPut | None = None,
    ) -> None:
        super().__init__(client, location, endpoint)
        self._fast = fast
        self.options = options
        self.multipart = Multipart(options.multipart_threshold, options.multipart_chunksize)
        self.copy_part_size = options.copy_part_size

    def _args(self, name: str, **more: Any) -> dict[str, Any]:
        return {"Bucket": self.location.bucket, "Key": self._key(name), **more}

    @contextlib.contextmanager
    def _upload_errors(self, name: str, upload_id: str) -> Iterator[None]:
        """A request of upload ``upload_id``: errors mapped, an upload the store no longer
        knows raised as ``UploadMissing``."""
        with mapped_errors(name, self._endpoint):
            try:
                yield
            except botocore.exceptions.ClientError as e:
                if error_code(e) == "NoSuchUpload":
                    raise UploadMissing(name, upload_id) from None
                raise

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        if self._fast is not None and isinstance(data, bytes | bytearray) and len(data) <= LARGEST:
            return quoted(self._fast.put(name, data, content_type=content_type, cold=cold))
        with mapped_errors(name, self._endpoint):
            resp = self.client.put_object(**self._put_args(name, data, content_type, cold))
        return quoted(resp["ETag"])

    def _put_args(self, name: str, data: Content, content_type: str, cold: bool) -> dict[str, Any]:
        body = data if isinstance(data, bytes | bytearray) else content_reader(data)
        return self._args(
            name,
            Body=body,
            ContentType=content_type,
            ChecksumAlgorithm=CHECKSUM,
            **self.options.put_args(cold=cold),
        )

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool:
        args = self._put_args(name, data, content_type, cold=False)
        with mapped_errors(name, self._endpoint):
            try:
                self.client.put_object(**args, IfNoneMatch="*")
            except botocore.exceptions.ClientError as e:
                code = error_code(e)
                if code in _TAKEN:
                    return False
                if code in _NOT_IMPLEMENTED:
                    raise StorageError(f"{self.location}: {REFUSED_UNCONDITIONAL}") from None
                raise
        return True

    def head(self, name: str) -> ObjectHead | None:
        try:
            with mapped_errors(name, self._endpoint):
                resp = self.client.head_object(**self._args(name))
        except ObjectMissing:
            return None
        return ObjectHead(int(resp["ContentLength"]), quoted(resp["ETag"]), resp.get("ContentType"))

    def copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        source = {"Bucket": self.location.bucket, "Key": self._key(src)}
        with mapped_errors(src, self._endpoint):
            try:
                resp = self.client.copy_object(
                    **self._args(dst),
                    CopySource=source,
                    MetadataDirective="REPLACE",
                    ContentType=content_type,
                    **self.options.put_args(cold=cold),
                )
            except botocore.exceptions.ClientError as e:
                message = str(e.response.get("Error", {}).get("Message", ""))
                if error_code(e) == "InvalidRequest" and "larger" in message:
                    raise CopyTooLarge(
                        f"{src}: over {COPY_LIMIT >> 30} GiB, which a server-side copy "
                        "copies only in parts"
                    ) from None
                raise
        return quoted(resp["CopyObjectResult"]["ETag"])

    def copy_part(
        self, name: str, upload_id: str, number: int, src: str, start: int, length: int
    ) -> Part:
        args = self._args(
            name,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.location.bucket, "Key": self._key(src)},
            CopySourceRange=f"bytes={start}-{start + length - 1}",
        )
        with self._upload_errors(name, upload_id):
            resp = self.client.upload_part_copy(**args)
        result = resp["CopyPartResult"]
        return Part(number, quoted(result["ETag"]), length, result.get("ChecksumCRC32"))

    # ------------------------------------------------------------------ uploads in parts
    def start_upload(self, name: str, *, content_type: str, cold: bool = False) -> str:
        args = self._args(
            name,
            ContentType=content_type,
            ChecksumAlgorithm=CHECKSUM,
            **self.options.put_args(cold=cold),
        )
        with mapped_errors(name, self._endpoint):
            return str(self.client.create_multipart_upload(**args)["UploadId"])

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part:
        args = self._args(
            name,
            UploadId=upload_id,
            PartNumber=number,
            Body=content_reader(data),
            ChecksumAlgorithm=CHECKSUM,
        )
        with self._upload_errors(name, upload_id):
            resp = self.client.upload_part(**args)
        return Part(number, quoted(resp["ETag"]), content_size(data), resp.get("ChecksumCRC32"))

    def list_parts(self, name: str, upload_id: str) -> dict[int, Part] | None:
        paginator = self.client.get_paginator("list_parts")
        parts: dict[int, Part] = {}
        with mapped_errors(name, self._endpoint):
            try:
                for page in paginator.paginate(**self._args(name, UploadId=upload_id)):
                    for p in page.get("Parts", []):
                        n = int(p["PartNumber"])
                        etag = quoted(p["ETag"])
                        parts[n] = Part(n, etag, int(p["Size"]), p.get("ChecksumCRC32"))
            except botocore.exceptions.ClientError as e:
                if error_code(e) in ("NoSuchUpload", "404", "NoSuchKey"):
                    return None
                raise
        return parts

    def complete_upload(self, name: str, upload_id: str, parts: Sequence[Part]) -> str:
        listed = []
        for p in parts:
            entry: dict[str, Any] = {"PartNumber": p.number, "ETag": p.etag}
            if p.checksum:
                entry["ChecksumCRC32"] = p.checksum
            listed.append(entry)
        args = self._args(name, UploadId=upload_id, MultipartUpload={"Parts": listed})
        with self._upload_errors(name, upload_id):
            resp = self.client.complete_multipart_upload(**args)
        return quoted(resp["ETag"])

    def abort(self, name: str, upload_id: str) -> None:
        with mapped_errors(name, self._endpoint):
            try:
                self.client.abort_multipart_upload(**self._args(name, UploadId=upload_id))
            except botocore.exceptions.ClientError as e:
                if error_code(e) not in ("NoSuchUpload", "404"):
                    raise

    def uploads(self, prefix: str) -> Iterator[PendingUpload]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        strip = len(self.location.prefix)
        with mapped_errors(prefix or "/", self._endpoint):
            pages = paginator.paginate(Bucket=self.location.bucket, Prefix=self._key(prefix))
            for page in pages:
                for u in page.get("Uploads", []):
                    yield PendingUpload(u["Key"][strip:], str(u["UploadId"]), u.get("Initiated"))

    def listing(self, prefix: str) -> Iterator[tuple[str, ObjectHead]]:
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.location.prefix)
        with mapped_errors(prefix or "/", self._endpoint):
            pages = paginator.paginate(Bucket=self.location.bucket, Prefix=self._key(prefix))
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:], ObjectHead(int(obj["Size"]), quoted(obj["ETag"]))


def quoted(etag: object) -> str:
    """An object's ETag in the double quotes HTTP puts around it."""
    text = str(etag)
    return text if text.startswith(('"', 'W/"')) else f'"{text}"'
