"""The versions capability of an S3 store (cairn.storage.versions), request by request.

- ``status``: GetBucketVersioning (a bucket never versioned answers without a Status).
- ``versions``: ListObjectVersions, page after page. The response lists each key's versions
  and delete markers newest first, interleaved, but boto3 parses them into two lists and loses
  that interleaving, which the timestamps alone cannot restore (LastModified has a resolution
  of one second on some stores: a version and the delete marker over it may carry the same
  one). A handler of the raw response notes the order of the two kinds of element, and the
  two lists are merged back by it.
- ``read_version``: GetObject with the VersionId (and a Range); NoSuchVersion is a missing
  object.
- ``restore_version``: CopyObject of the version onto its own key (its metadata and content
  type kept, in the storage class given, with the store's server-side encryption).
- ``hide``: DeleteObject without a VersionId, which in a versioned bucket adds a delete
  marker and removes nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import botocore.exceptions

from cairn.core.errors import ObjectMissing
from cairn.storage.s3capability import S3Capability
from cairn.storage.s3config import S3Location, S3Options
from cairn.storage.s3errors import error_code, mapped_errors
from cairn.storage.versions import ENABLED, OFF, SUSPENDED, ObjectVersion

ORDER_KEY = "CairnEntryOrder"  # added to each parsed page: "V" and "D", in the XML's order


class S3Versions(S3Capability):
    def __init__(
        self, client: Any, location: S3Location, options: S3Options, endpoint: str
    ) -> None:
        super().__init__(client, location, endpoint)
        self.options = options
        client.meta.events.register(
            "after-call.s3.ListObjectVersions", _note_order, unique_id="cairn-version-order"
        )

    def status(self) -> str:
        with mapped_errors(self.location.bucket, self._endpoint):
            resp = self.client.get_bucket_versioning(Bucket=self.location.bucket)
        return {"Enabled": ENABLED, "Suspended": SUSPENDED}.get(resp.get("Status", ""), OFF)

    def versions(self, prefix: str) -> Iterator[ObjectVersion]:
        paginator = self.client.get_paginator("list_object_versions")
        strip = len(self.location.prefix)
        with mapped_errors(prefix or "/", self._endpoint):
            pages = paginator.paginate(Bucket=self.location.bucket, Prefix=self._key(prefix))
            for page in pages:
                for entry, deleted in entries_in_order(page):
                    yield ObjectVersion(
                        name=entry["Key"][strip:],
                        version_id=str(entry["VersionId"]),
                        modified=entry["LastModified"],
                        size=0 if deleted else int(entry.get("Size", 0)),
                        latest=bool(entry.get("IsLatest")),
                        deleted=deleted,
                        etag="" if deleted else str(entry.get("ETag", "")),
                        storage_class=str(entry.get("StorageClass") or "STANDARD"),
                    )

    def read_version(
        self, name: str, version_id: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        args = {"Bucket": self.location.bucket, "Key": self._key(name), "VersionId": version_id}
        if length == 0:
            return b""
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        with mapped_errors(name, self._endpoint):
            try:
                resp = self.client.get_object(**args)
            except botocore.exceptions.ClientError as e:
                if _no_such_version(e):
                    raise ObjectMissing(f"{name} (version {version_id})") from None
                raise
            return resp["Body"].read()  # type: ignore[no-any-return]

    def restore_version(
        self, name: str, version_id: str, *, storage_class: str | None = None
    ) -> str:
        key = self._key(name)
        source = {"Bucket": self.location.bucket, "Key": key, "VersionId": version_id}
        extra = self.options.put_args(cold=False)
        if storage_class and storage_class != "STANDARD":
            extra["StorageClass"] = storage_class
        with mapped_errors(name, self._endpoint):
            try:
                resp = self.client.copy_object(
                    Bucket=self.location.bucket, Key=key, CopySource=source, **extra
                )
            except botocore.exceptions.ClientError as e:
                if _no_such_version(e):
                    raise ObjectMissing(f"{name} (version {version_id})") from None
                raise
        return str(resp.get("VersionId") or "")

    def hide(self, name: str) -> str:
        with mapped_errors(name, self._endpoint):
            resp = self.client.delete_object(Bucket=self.location.bucket, Key=self._key(name))
        return str(resp.get("VersionId") or "")


def _no_such_version(e: botocore.exceptions.ClientError) -> bool:
    """NoSuchVersion; Amazon S3's answer to a version id of the wrong form; or its answer to
    a GET of a delete marker's version id (405: a marker holds nothing to read)."""
    message = str(e.response.get("Error", {}).get("Message", "")).lower()
    code = error_code(e)
    if code in ("NoSuchVersion", "MethodNotAllowed", "405"):
        return True
    return code == "InvalidArgument" and "version" in message


def _note_order(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    """A botocore ``after-call`` handler: the order of the Version and DeleteMarker elements
    of a ListObjectVersions response, as ``ORDER_KEY`` of the parsed page."""
    try:
        root = ET.fromstring(http_response.content)
    except (ET.ParseError, TypeError, ValueError):
        return  # an error response, parsed elsewhere
    order = []
    for child in root:
        tag = child.tag.rpartition("}")[2]
        if tag in ("Version", "DeleteMarker"):
            order.append(tag[0])
    parsed[ORDER_KEY] = "".join(order)


def entries_in_order(page: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """The page's versions and delete markers (each with whether it is a marker), in the
    order the store listed them. Without a noted order (or one that does not match the
    lists), each key's entries newest first by time, a version before a marker of the same
    time."""
    versions = page.get("Versions", [])
    markers = page.get("DeleteMarkers", [])
    order = page.get(ORDER_KEY)
    if (
        order is not None
        and order.count("V") == len(versions)
        and len(order) == len(versions) + len(markers)
    ):
        v, m = iter(versions), iter(markers)
        for kind in order:
            yield (next(v), False) if kind == "V" else (next(m), True)
        return
    merged = [(e, False) for e in versions] + [(e, True) for e in markers]
    merged.sort(key=lambda item: (item[0]["Key"], -item[0]["LastModified"].timestamp()))
    yield from merged
