"""Archived objects (Amazon S3's GLACIER and DEEP_ARCHIVE) simulated around the real S3
backend, at its boto3 transport.

SeaweedFS stores and lists storage classes, but it serves GLACIER objects like any other and
answers RestoreObject with 405. Attached to a boto3 client with botocore event hooks (as
tests/faults.py is), this adds what Amazon S3 does, so cairn's real S3Storage code runs
against the real server and meets S3's answers:

- an object PUT with an archive class is archived: a GET of it answers 403 InvalidObjectState
  until a restore was requested and ``delay`` seconds have passed;
- RestoreObject answers 202 (accepted), then 409 RestoreAlreadyInProgress while the restore
  runs, and 200 once the copy is readable;
- HEAD carries ``x-amz-restore`` (``Restore``): ``ongoing-request="true"`` while restoring,
  ``ongoing-request="false", expiry-date=...`` once readable.

Everything else goes to the real server unchanged.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse

from tests.faults import RawBody as _Raw

ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
_INVALID_STATE = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidObjectState</Code>'
    b"<Message>The operation is not valid for the object's storage class</Message>"
    b"<StorageClass>GLACIER</StorageClass></Error>"
)
_IN_PROGRESS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>RestoreAlreadyInProgress</Code>'
    b"<Message>Object restore is already in progress</Message></Error>"
)


class ArchiveSimulator:
    def __init__(self, bucket: str, delay: float = 0.5) -> None:
        self.bucket = bucket
        self.delay = delay
        self.archived: dict[str, str] = {}  # key -> archive class
        self.requested: dict[str, float] = {}  # key -> when its restore was requested
        self.restore_requests: list[str] = []  # every RestoreObject, in order
        self.blocked_reads: list[str] = []  # GETs refused with InvalidObjectState
        self._lock = threading.Lock()

    def attach(self, client) -> None:  # type: ignore[no-untyped-def]
        events = client.meta.events
        events.register("before-send.s3.PutObject", self._on_put)
        events.register("before-send.s3.CreateMultipartUpload", self._on_put)
        events.register("before-send.s3.GetObject", self._on_get)
        events.register("before-send.s3.RestoreObject", self._on_restore)
        events.register("after-call.s3.HeadObject", self._on_head)

    # ------------------------------------------------------------------ state
    def _key(self, url: str) -> str:
        path = unquote(urlsplit(url).path)
        prefix = f"/{self.bucket}/"
        return path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")

    def readable(self, key: str) -> bool:
        with self._lock:
            if key not in self.archived:
                return True
            since = self.requested.get(key)
            return since is not None and time.monotonic() - since >= self.delay

    # ------------------------------------------------------------------ hooks
    def _on_put(self, request, **kwargs):  # type: ignore[no-untyped-def]
        cls = request.headers.get("x-amz-storage-class")
        if isinstance(cls, bytes):
            cls = cls.decode()
        if cls in ARCHIVE_CLASSES:
            with self._lock:
                self.archived[self._key(request.url)] = cls
        return None

    def _on_get(self, request, **kwargs):  # type: ignore[no-untyped-def]
        key = self._key(request.url)
        if self.readable(key):
            return None
        with self._lock:
            self.blocked_reads.append(key)
        headers = {"Content-Type": "application/xml"}
        return AWSResponse(request.url, 403, headers, _Raw(_INVALID_STATE))

    def _on_restore(self, request, **kwargs):  # type: ignore[no-untyped-def]
        key = self._key(request.url)
        with self._lock:
            self.restore_requests.append(key)
            if key not in self.archived:
                return AWSResponse(
                    request.url, 403, {"Content-Type": "application/xml"}, _Raw(_INVALID_STATE)
                )
            first = key not in self.requested
            if first:
                self.requested[key] = time.monotonic()
        if first:
            return AWSResponse(request.url, 202, {}, _Raw(b""))
        if not self.readable(key):
            return AWSResponse(
                request.url, 409, {"Content-Type": "application/xml"}, _Raw(_IN_PROGRESS)
            )
        return AWSResponse(request.url, 200, {}, _Raw(b""))

    def _on_head(self, http_response, parsed, **kwargs):  # type: ignore[no-untyped-def]
        key = self._key(http_response.url)
        with self._lock:
            archived = key in self.archived
            requested = key in self.requested
        if archived and requested:
            if self.readable(key):
                parsed["Restore"] = (
                    'ongoing-request="false", expiry-date="Fri, 21 Dec 2035 00:00:00 GMT"'
                )
            else:
                parsed["Restore"] = 'ongoing-request="true"'
