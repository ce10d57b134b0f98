"""A mirror's small PutObjects through obstore (the Python bindings of Rust's object_store):
the same request botocore's ``put_object`` makes, for a sixth of its CPU. A first push is
tens of thousands of small PUTs on cores it shares with the store; botocore's per-request
Python (building, signing, sending, parsing: about 1.8 ms of CPU a PUT) decided its time
(docs/performance.md, "Where a first push's time goes").

What stays as botocore's S3 client has it:

- the credentials: the boto3 session's resolved chain (``Session.get_credentials``), asked
  again every few minutes, so that refreshable ones (roles, SSO) are refreshed as botocore
  refreshes them;
- the bucket's URL (endpoint, region, path or virtual-hosted style): taken from a URL the
  client presigns (``generate_presigned_url``), so that both address the same place;
- the timeouts (connect, per read), the custom CA bundle (``AWS_CA_BUNDLE``), server-side
  encryption, and the storage class of a cold object;
- no retries of its own: the retry wrapper retries, as it retries botocore's requests.

Integrity on the wire: every PUT carries ``x-amz-checksum-sha256`` (computed in Rust), which
the store verifies before it stores the object (S3 and SeaweedFS answer ``BadDigest``). The
payload's SHA-256 in the signature is not enough: SeaweedFS does not check it.

Only in-memory content up to ``LARGEST`` bytes goes this way (a file's bytes, a hint); content
read from a file descriptor, create-only writes and the requests of uploads in parts stay
botocore's (cairn.storage.s3objects). Unsigned (anonymous) stores, which cannot write, too.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cairn.storage.s3config import S3Location, S3Options
from cairn.storage.s3errors import answered, answered_error, unreachable

if TYPE_CHECKING:
    import boto3

LARGEST = 16 << 20  # in-memory content up to this size goes up here
_ASK_AGAIN = timedelta(minutes=5)  # the credentials are taken from the session again after
_WHOLE_REQUEST = timedelta(hours=1)  # object_store's default is 30 s for a whole request
_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


class FastPut:
    """PutObject of in-memory content; ``put`` returns the ETag as the store gave it."""

    def __init__(self, store: Any, location: S3Location, endpoint: str, options: S3Options):
        self._store = store
        self._prefix = location.prefix
        self._endpoint = endpoint  # as errors name it
        self._cold_class = options.storage_class

    @classmethod
    def for_client(
        cls,
        session: boto3.session.Session,
        client: Any,
        location: S3Location,
        endpoint: str,
        options: S3Options,
    ) -> FastPut | None:
        """The fast path of ``client`` (made from ``session``), or None where there is none:
        an unsigned client, or no credentials (botocore's own request then says so)."""
        if options.anonymous:
            return None
        credentials = session.get_credentials()
        if credentials is None:
            return None
        import obstore.store  # only a mirror's push pays for loading it

        url = urlsplit(
            client.generate_presigned_url(
                "put_object", Params={"Bucket": location.bucket, "Key": "k"}, ExpiresIn=60
            )
        )
        path_style = url.path.endswith(f"/{location.bucket}/k")
        # what comes before the bucket (path style) or the key (virtual-hosted style)
        above = url.path.removesuffix(f"/{location.bucket}/k" if path_style else "/k")
        client_options: dict[str, Any] = {
            "allow_http": url.scheme == "http",
            "connect_timeout": timedelta(seconds=options.connect_timeout),
            "read_timeout": timedelta(seconds=options.read_timeout),
            "timeout": _WHOLE_REQUEST,
        }
        if bundle := os.environ.get("AWS_CA_BUNDLE"):
            with open(bundle, "rb") as f:
                client_options["root_certificate"] = f.read()
        config: dict[str, Any] = {
            "endpoint": f"{url.scheme}://{url.netloc}{above}",
            "region": client.meta.region_name or "us-east-1",
            "virtual_hosted_style_request": not path_style,
            "checksum_algorithm": "sha256",
        }
        if options.sse:
            config["server_side_encryption"] = options.sse
            if options.sse_kms_key_id:
                config["sse_kms_key_id"] = options.sse_kms_key_id

        def provide() -> dict[str, Any]:
            frozen = credentials.get_frozen_credentials()
            return {
                "access_key_id": frozen.access_key,
                "secret_access_key": frozen.secret_key,
                "token": frozen.token,
                "expires_at": datetime.now(UTC) + _ASK_AGAIN,
            }

        store = obstore.store.S3Store(
            location.bucket,
            config=config,
            client_options=client_options,
            retry_config={"max_retries": 0},
            credential_provider=provide,
        )
        return cls(store, location, endpoint, options)

    def put(self, name: str, data: bytes | bytearray, *, content_type: str, cold: bool) -> str:
        import obstore
        from obstore.exceptions import BaseError

        attributes = {"Content-Type": content_type}
        if cold and self._cold_class:
            attributes["Storage-Class"] = self._cold_class
        try:
            result = obstore.put(
                self._store,
                self._prefix + name,
                data,
                attributes=attributes,  # type: ignore[arg-type]
                use_multipart=False,
            )
        except BaseError as e:
            raise self._error(name, e) from None
        answered(self._endpoint)
        return str(result["e_tag"])

    def _error(self, name: str, e: Exception) -> Exception:
        text = str(e)
        status = _STATUS.search(text)
        if status is None:  # no answer: the connection failed or timed out
            refused = "onnection refused" in text or "ConnectionRefused" in text
            return unreachable(name, self._endpoint, refused, e)
        answered(self._endpoint)
        code = _CODE.search(text)
        message = _MESSAGE.search(text)
        return answered_error(
            name,
            code.group(1) if code else status.group(1),
            int(status.group(1)),
            message.group(1) if message else None,
        )
