"""Where an S3 repository is and how to talk to it: plain values, no SDK import (boto3 takes
a quarter of a second to load, and only S3 repositories should pay for it)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from cairn.core.errors import UsageError
from cairn.storage.objects import COPY_PART

STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
        "GLACIER",
        "DEEP_ARCHIVE",
        "REDUCED_REDUNDANCY",
    }
)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # '' or ending in '/'
    endpoint: str | None  # None: AWS

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://BUCKET/PREFIX`` (AWS) or ``s3:http(s)://HOST[:PORT]/BUCKET/PREFIX``."""
        if url.startswith("s3://"):
            rest, endpoint = url[len("s3://") :], None
        elif url.startswith(("s3:http://", "s3:https://")):
            parts = urlsplit(url[len("s3:") :])
            if not parts.netloc:
                raise UsageError(f"invalid S3 URL {url!r}: no host")
            endpoint = f"{parts.scheme}://{parts.netloc}"
            rest = parts.path.lstrip("/")
        else:
            raise UsageError(
                f"invalid S3 URL {url!r} (use s3://BUCKET/PREFIX or s3:https://HOST/BUCKET/PREFIX)"
            )
        bucket, _, prefix = rest.partition("/")
        if len(bucket) < 3:
            raise UsageError(f"invalid S3 URL {url!r}: bucket names have at least 3 characters")
        prefix = prefix.strip("/")
        return cls(bucket, prefix + "/" if prefix else "", endpoint)

    def __str__(self) -> str:
        path = f"{self.bucket}/{self.prefix}".rstrip("/")
        return f"s3:{self.endpoint}/{path}" if self.endpoint else f"s3://{path}"


@dataclass(frozen=True)
class S3Options:
    storage_class: str | None = None  # for data packs only
    path_style: bool = False
    anonymous: bool = False  # unsigned requests: a public bucket, read with no credentials
    sse: str | None = None  # "AES256" or "aws:kms"
    sse_kms_key_id: str | None = None
    region: str | None = None
    profile: str | None = None
    connections: int = 4
    multipart_threshold: int = 64 << 20
    multipart_chunksize: int = 16 << 20
    copy_part_size: int = COPY_PART  # server-side copies over 5 GiB go in parts of this
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.storage_class is not None and self.storage_class not in STORAGE_CLASSES:
            raise UsageError(
                f"unknown storage class {self.storage_class!r} "
                f"(one of {', '.join(sorted(STORAGE_CLASSES))})"
            )
        if self.sse not in (None, "AES256", "aws:kms"):
            raise UsageError(f"unknown server-side encryption {self.sse!r} (AES256 or aws:kms)")

    def put_args(self, *, cold: bool) -> dict[str, str]:
        """The storage class (``cold``: the configured colder one, if any) and server-side
        encryption arguments of an upload."""
        args: dict[str, str] = {}
        if cold and self.storage_class:
            args["StorageClass"] = self.storage_class
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args
