"""The object lock capability of an S3 store (cairn.storage.objectlock), through boto3.

One instance per store: it holds the rule its writes follow, so the store's ``write`` asks it
for the retention arguments of each upload (``put_args``) and tells it what it wrote
(``wrote``). Every upload already carries a CRC32 checksum, which is what S3 requires of a PUT
with a retention (in place of Content-MD5); PutObjectRetention gets its checksum from botocore.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import botocore.exceptions

from cairn.core import clock
from cairn.core.errors import StorageError
from cairn.storage.objectlock import Retention, RetentionRule
from cairn.storage.s3capability import S3Capability
from cairn.storage.s3config import S3Location
from cairn.storage.s3errors import error_code, mapped_errors

LIFECYCLE_RULE_ID = "cairn-noncurrent-versions"
_NO_LOCK = ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration")


class S3ObjectLock(S3Capability):
    def __init__(self, client: Any, location: S3Location, endpoint: str) -> None:
        super().__init__(client, location, endpoint)
        self._rule: RetentionRule | None = None
        self._mutex = threading.Lock()
        self._written: dict[str, datetime] = {}

    # ------------------------------------------------------------------ writes
    def retain_writes(self, rule: RetentionRule | None) -> None:
        self._rule = rule

    def put_args(self) -> tuple[dict[str, object], datetime | None]:
        """The retention arguments of an upload starting now, and its retain-until."""
        rule = self._rule
        if rule is None:
            return {}, None
        until = rule.keep_until(clock.now())
        return {"ObjectLockMode": rule.mode, "ObjectLockRetainUntilDate": until}, until

    def wrote(self, name: str, until: datetime | None) -> None:
        if until is not None:
            with self._mutex:
                self._written[name] = until

    def written(self) -> dict[str, datetime]:
        with self._mutex:
            return dict(self._written)

    # ------------------------------------------------------------------ requests
    def bucket_locked(self) -> bool:
        with mapped_errors(self.location.bucket, self._endpoint):
            try:
                resp = self.client.get_object_lock_configuration(Bucket=self.location.bucket)
            except botocore.exceptions.ClientError as e:
                if error_code(e) in _NO_LOCK:
                    return False
                raise
        config = resp.get("ObjectLockConfiguration") or {}
        return config.get("ObjectLockEnabled") == "Enabled"

    def retention(self, name: str) -> Retention | None:
        with mapped_errors(name, self._endpoint):
            try:
                resp = self.client.get_object_retention(
                    Bucket=self.location.bucket, Key=self._key(name)
                )
            except botocore.exceptions.ClientError as e:
                # asked of a version without a retention, stores answer either way
                if error_code(e) in (*_NO_LOCK, "NoSuchObjectLockRetention"):
                    return None
                raise
        r = resp.get("Retention") or {}
        if not r.get("RetainUntilDate"):
            return None
        return Retention(str(r.get("Mode", "")), r["RetainUntilDate"])

    def extend(self, name: str, until: datetime) -> None:
        rule = self._rule
        if rule is None:
            raise StorageError(f"{name}: no object lock rule to extend the retention with")
        with mapped_errors(name, self._endpoint):
            self.client.put_object_retention(
                Bucket=self.location.bucket,
                Key=self._key(name),
                Retention={"Mode": rule.mode, "RetainUntilDate": until},
            )
        self.wrote(name, until)

    def configure_bucket(self, rule: RetentionRule, noncurrent_days: int | None) -> None:
        bucket = self.location.bucket
        with mapped_errors(bucket, self._endpoint):
            self.client.put_object_lock_configuration(
                Bucket=bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": rule.mode, "Days": rule.days}},
                },
            )
            if noncurrent_days is None:
                return
            self.client.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={
                    "Rules": [
                        {
                            "ID": LIFECYCLE_RULE_ID,
                            "Status": "Enabled",
                            "Filter": {"Prefix": self.location.prefix},
                            "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
                            "Expiration": {"ExpiredObjectDeleteMarker": True},
                        }
                    ]
                },
            )
