"""Amazon S3 and S3-compatible stores, through boto3.

- Credentials and region come from the standard AWS chain (environment, shared config and
  credentials files, profiles, instance and container roles); with ``anonymous`` none are
  looked for and requests go unsigned (a bucket whose policy allows anonymous reads).
- Every write carries a CRC32 checksum that the store verifies; writes are conditional
  (If-None-Match: *) where the store supports it, so an object is never overwritten. (A
  mirror's small PUTs, cairn.storage.s3put, carry a SHA-256 instead.)
- Objects larger than ``multipart_threshold`` go up as multipart uploads (s3transfer).
- An object smaller than ``SMALL_PUT`` (a lock, a snapshot, an index object, the small first
  pack of a first backup) goes up without ``Expect: 100-continue``, which botocore asks for on
  every PUT: waiting for the store's go before sending the body costs a round trip, more than
  sending a small body for nothing (the store refuses hardly any: the credentials were proven
  by the opening's reads, and a pack is written once).
- Data packs may use a colder storage class; everything else stays in STANDARD. The store is
  its own archive capability (``archive``, cairn.storage.archive): listings with storage
  classes, and restore requests for archived (GLACIER, DEEP_ARCHIVE) objects, whose reads
  raise ObjectArchived. ``list`` and ``list_with_class`` share one paginated listing.
- Its object capability (``objects``: overwrites, create-only writes, copies, resumable
  multipart uploads, for mirrors) is cairn.storage.s3objects; its versions capability
  (``versions``: ListObjectVersions, reads and copies of a version, for point-in-time reads)
  is cairn.storage.s3versions. Whether the bucket keeps versions is its ``status()``.
- Its object lock capability (``object_lock``: retention periods, cairn.storage.objectlock)
  is cairn.storage.s3objectlock; while it has a rule, every write carries a retention.
- Errors become one-line StorageErrors; throttling, 5xx and connection failures are
  TransientStorageError, which the retry wrapper retries. A refused connection is transient
  only from an endpoint that has answered in this process: from one that never did (most
  likely a mistyped endpoint) it fails at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore
import botocore.exceptions
import botocore.utils
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from cairn.core.errors import StorageError
from cairn.storage.archive import (
    ARCHIVE_CLASSES,
    ARCHIVED,
    READABLE,
    RESTORED,
    RESTORING,
    ArchiveStore,
    ObjectInfo,
)
from cairn.storage.base import Content, content_reader, content_size, read_into_by_read
from cairn.storage.objectlock import ObjectLockStore
from cairn.storage.objects import ObjectStore
from cairn.storage.s3config import S3Location, S3Options
from cairn.storage.s3errors import error_code, mapped_errors
from cairn.storage.s3objectlock import S3ObjectLock
from cairn.storage.s3objects import S3Objects
from cairn.storage.s3put import FastPut
from cairn.storage.s3versions import S3Versions
from cairn.storage.versions import VersionStore

# below this, a PUT sends its body at once (no ``Expect: 100-continue``): locks, snapshots,
# index objects (up to a few MiB) and the first data pack of a first backup (a fifth of the
# 40 MiB packs: app/defaults.py), which goes up while the link has nothing else to carry
SMALL_PUT = 9 << 20
# the requests whose answers are listings (XML, as long as what they list)
_LISTINGS = ("ListObjectsV2", "ListObjectVersions", "ListMultipartUploads", "ListParts")


class S3Storage:
    def __init__(self, location: S3Location, options: S3Options | None = None, client=None) -> None:  # type: ignore[no-untyped-def]
        self.location = location
        self._session: boto3.session.Session | None = None  # of the client made here
        self._endpoint = location.endpoint or "Amazon S3"  # as errors name it
        self.options = options or S3Options()
        # public so that callers may register botocore event handlers (tests simulate faults
        # and archived objects at the transport that way)
        self.client = client or self._make_client()
        # the bodies of listings, which the store bills as egress as it does a GET's
        self._listed = 0
        self._listed_lock = threading.Lock()
        for operation in _LISTINGS:
            self.client.meta.events.register(f"after-call.s3.{operation}", self._count_listing)
        self._conditional = True
        self._fast: FastPut | None = None
        self._fast_made = False
        self._fast_lock = threading.Lock()
        self._lock = S3ObjectLock(self.client, location, self._endpoint)
        self._transfer = TransferConfig(
            multipart_threshold=self.options.multipart_threshold,
            multipart_chunksize=self.options.multipart_chunksize,
            max_concurrency=4,
            use_threads=True,
        )

    def _count_listing(self, http_response, **_: object) -> None:  # type: ignore[no-untyped-def]
        with self._listed_lock:
            self._listed += len(http_response.content or b"")

    def listed_bytes(self) -> int:
        """The bytes of every listing's answers so far (ListObjectsV2 and the other List
        requests): downloaded, as a GET's body is."""
        with self._listed_lock:
            return self._listed

    def _make_client(self):  # type: ignore[no-untyped-def]
        o = self.options
        config = Config(
            region_name=o.region,
            max_pool_connections=max(10, o.connections * 4),
            connect_timeout=o.connect_timeout,
            read_timeout=o.read_timeout,
            retries={"mode": "standard", "total_max_attempts": 1},  # the retry wrapper retries
            s3={"addressing_style": "path" if o.path_style else "auto"},
            request_checksum_calculation="when_supported",
            response_checksum_validation="when_supported",
        )
        if o.anonymous:  # no credentials looked for, none sent
            config = config.merge(Config(signature_version=botocore.UNSIGNED))
        try:
            session = self._session = boto3.session.Session(profile_name=o.profile)
        except botocore.exceptions.ProfileNotFound as e:
            raise StorageError(str(e)) from None
        region = (
            o.region or session.region_name or ("us-east-1" if self.location.endpoint else None)
        )
        client = session.client(
            "s3", endpoint_url=self.location.endpoint, region_name=region, config=config
        )
        client.meta.events.register_last("before-call.s3", _send_small_bodies_at_once)
        return client

    def describe(self) -> str:
        return str(self.location)

    def _key(self, name: str) -> str:
        return self.location.prefix + name

    # ------------------------------------------------------------------ operations
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        args = {"Bucket": self.location.bucket, "Key": self._key(name)}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            if length == 0:
                return b""
            args["Range"] = f"bytes={offset}-{end}"
        with mapped_errors(name, self._endpoint):
            resp = self.client.get_object(**args)
            return resp["Body"].read()  # type: ignore[no-any-return]

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        return read_into_by_read(self, name, offset, out)

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        retention, until = self._lock.put_args()
        extra = {**self.options.put_args(cold=not metadata), **retention}
        key = self._key(name)
        size = content_size(data)
        with mapped_errors(name, self._endpoint):
            if not self._write(key, data, size, extra):
                return
        self._lock.wrote(name, until)

    def _write(self, key: str, data: Content, size: int, extra: dict[str, object]) -> bool:
        """Uploads the object; False if it was there already (and so keeps its own retention)."""
        if size >= self.options.multipart_threshold:
            self.client.upload_fileobj(
                content_reader(data),
                self.location.bucket,
                key,
                ExtraArgs={**extra, "ChecksumAlgorithm": "CRC32"},
                Config=self._transfer,
            )
            return True
        try:
            self._put(key, data, extra)
        except botocore.exceptions.ClientError as e:
            code = error_code(e)
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False  # already there: objects are write-once and content-addressed
            if code in ("NotImplemented", "501") and self._conditional:
                self._conditional = False  # the store does not know If-None-Match
                self._put(key, data, extra)
                return True
            raise
        return True

    def _put(self, key: str, data: Content, extra: dict[str, object]) -> None:
        args = {
            "Bucket": self.location.bucket,
            "Key": key,
            "Body": data if isinstance(data, bytes | bytearray) else content_reader(data),
            "ChecksumAlgorithm": "CRC32",
            **extra,
        }
        if self._conditional:
            args["IfNoneMatch"] = "*"
        self.client.put_object(**args)

    def stat(self, name: str) -> int:
        with mapped_errors(name, self._endpoint):
            resp = self.client.head_object(Bucket=self.location.bucket, Key=self._key(name))
            return int(resp["ContentLength"])

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for name, obj in self._listing(prefix):
            yield name, int(obj["Size"])

    def _listing(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The one listing loop: (name, ListObjectsV2 entry) for every object under
        ``prefix``, page after page."""
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.location.prefix)
        with mapped_errors(prefix or "/", self._endpoint):
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self._key(prefix)):
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:], obj

    def delete(self, name: str) -> None:
        with mapped_errors(name, self._endpoint):
            self.client.delete_object(Bucket=self.location.bucket, Key=self._key(name))

    # ------------------------------------------------------------------ storage classes
    @property
    def archive(self) -> ArchiveStore:
        return self

    def list_with_class(self, prefix: str) -> Iterator[ObjectInfo]:
        """As ``list``, with each object's storage class and time (the same LIST requests)."""
        for name, obj in self._listing(prefix):
            yield ObjectInfo(
                name,
                int(obj["Size"]),
                obj.get("StorageClass") or "STANDARD",
                obj.get("LastModified"),
            )

    def request_restore(self, name: str, days: int, tier: str) -> None:
        """Asks for a readable copy of an archived object for ``days`` days (RestoreObject)."""
        request = {"Days": days, "GlacierJobParameters": {"Tier": tier}}
        with mapped_errors(name, self._endpoint):
            try:
                self.client.restore_object(
                    Bucket=self.location.bucket, Key=self._key(name), RestoreRequest=request
                )
            except botocore.exceptions.ClientError as e:
                code = error_code(e)
                if code == "RestoreAlreadyInProgress":
                    return
                if code == "InvalidObjectState":
                    raise StorageError(f"{name}: not in an archive storage class") from None
                raise

    def restore_status(self, name: str) -> str:
        """READABLE, ARCHIVED, RESTORING or RESTORED, from HEAD (StorageClass, x-amz-restore)."""
        with mapped_errors(name, self._endpoint):
            head = self.client.head_object(Bucket=self.location.bucket, Key=self._key(name))
        if head.get("StorageClass") not in ARCHIVE_CLASSES:
            return READABLE
        restore = head.get("Restore") or ""
        if not restore:
            return ARCHIVED
        return RESTORING if 'ongoing-request="true"' in restore else RESTORED

    # ------------------------------------------------------------------ mirrored objects
    @property
    def objects(self) -> ObjectStore:
        return S3Objects(self.client, self.location, self.options, self._endpoint, self._fast_put())

    def _fast_put(self) -> FastPut | None:
        """The small PUTs' path of a mirror (cairn.storage.s3put), made once, when first
        asked for; none with a client given from outside (whose session is not known)."""
        with self._fast_lock:
            if not self._fast_made and self._session is not None:
                self._fast = FastPut.for_client(
                    self._session, self.client, self.location, self._endpoint, self.options
                )
            self._fast_made = True
            return self._fast

    # ------------------------------------------------------------------ object versions
    @property
    def versions(self) -> VersionStore:
        return S3Versions(self.client, self.location, self.options, self._endpoint)

    @property
    def object_lock(self) -> ObjectLockStore:
        return self._lock

    def create_bucket(self, *, object_lock: bool = False) -> bool:
        """Creates the bucket if it does not exist (used by init), with ``object_lock``
        enabled (and so versioning); returns whether it created it."""
        with mapped_errors(self.location.bucket, self._endpoint):
            try:
                self.client.head_bucket(Bucket=self.location.bucket)
                return False
            except botocore.exceptions.ClientError as e:
                if error_code(e) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
            args: dict[str, object] = {"Bucket": self.location.bucket}
            region = self.client.meta.region_name
            if not self.location.endpoint and region and region != "us-east-1":
                args["CreateBucketConfiguration"] = {"LocationConstraint": region}
            if object_lock:
                args["ObjectLockEnabledForBucket"] = True
            self.client.create_bucket(**args)
            return True


def _send_small_bodies_at_once(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
    """A botocore ``before-call`` handler, run after botocore's own (which adds ``Expect:
    100-continue`` to every PUT with a body): a PutObject of fewer than ``SMALL_PUT`` bytes
    sends its body at once."""
    headers = params.get("headers", {})
    if model.name != "PutObject" or "Expect" not in headers:
        return
    length = botocore.utils.determine_content_length(params.get("body"))
    if length is not None and length < SMALL_PUT:
        del headers["Expect"]
