"""S3 errors as cairn's one-line storage errors: which are transient (retried), which mean a
missing object, an archived one, bad credentials or a missing bucket."""

from __future__ import annotations

import botocore
import botocore.exceptions

from cairn.core.errors import ObjectArchived, ObjectMissing, StorageError, TransientStorageError

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "502",
        "504",
    }
)
_AUTH_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "ExpiredToken"}
)


def error_code(e: botocore.exceptions.ClientError) -> str:
    err = e.response.get("Error", {})
    code = str(err.get("Code", ""))
    if not code:
        code = str(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code


# the endpoints that answered a request in this process: a refused connection to one of them
# is a server restarting (retried), to any other most likely a mistyped endpoint (not retried)
_ANSWERED: set[str] = set()


def _refused(exc: BaseException) -> bool:
    """Whether a connection error is, underneath, a refused connection."""
    seen: BaseException | None = exc.kwargs.get("error") if hasattr(exc, "kwargs") else exc
    for _ in range(8):  # the chain urllib3 builds is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def answered_error(name: str, code: str, status: int, message: str | None) -> StorageError:
    """The error for the store's answer of HTTP ``status`` with error ``code`` about ``name``
    (shared by botocore's requests and the mirror's small PUTs, cairn.storage.s3put)."""
    message = message or code
    if code in ("NoSuchKey", "404", "NotFound") and code != "NoSuchBucket":
        return ObjectMissing(name)
    if code == "NoSuchBucket":
        return StorageError(f"the bucket does not exist ({message})")
    if code == "InvalidObjectState":  # a GET of an archived object (HTTP 403)
        return ObjectArchived(name)
    if code in _AUTH_CODES or status == 403:
        return StorageError(f"access denied for {name}: check the credentials ({code})")
    if code in _TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientStorageError(f"{name}: the store answered {code}: {message}")
    return StorageError(f"{name}: {code}: {message}")


def unreachable(name: str, endpoint: str, refused: bool, exc: BaseException) -> StorageError:
    """The error for a request that got no answer: transient, but for a refused connection to
    an endpoint that has never answered in this process (most likely a mistyped one)."""
    if refused and endpoint not in _ANSWERED:
        return StorageError(
            f"cannot reach {endpoint}: connection refused, and nothing has "
            "answered there (is the endpoint right?)"
        )
    return TransientStorageError(f"{name}: cannot reach the store: {exc}")


def answered(endpoint: str) -> None:
    """Notes that ``endpoint`` has answered a request in this process."""
    _ANSWERED.add(endpoint)


class mapped_errors:
    """Maps boto errors raised inside the block to cairn's one-line storage errors."""

    def __init__(self, name: str, endpoint: str) -> None:
        self.name = name
        self.endpoint = endpoint

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        if exc is None or isinstance(exc, StorageError | botocore.exceptions.ClientError):
            _ANSWERED.add(self.endpoint)
        if exc is None or isinstance(exc, StorageError):
            return False
        if isinstance(exc, botocore.exceptions.ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = exc.response.get("Error", {}).get("Message")
            raise answered_error(self.name, error_code(exc), status, message) from None
        if isinstance(
            exc,
            botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
        ):
            raise StorageError(
                "no usable AWS credentials (environment, profile or instance role)"
            ) from None
        if isinstance(exc, botocore.exceptions.ParamValidationError):
            raise StorageError(f"{self.name}: {exc}") from None
        if isinstance(
            exc,
            botocore.exceptions.EndpointConnectionError
            | botocore.exceptions.ConnectionClosedError
            | botocore.exceptions.ConnectTimeoutError
            | botocore.exceptions.ReadTimeoutError
            | botocore.exceptions.ResponseStreamingError
            | botocore.exceptions.IncompleteReadError
            | ConnectionError,
        ):
            raise unreachable(self.name, self.endpoint, _refused(exc), exc) from None
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            raise StorageError(f"{self.name}: {exc}") from None
        return False
