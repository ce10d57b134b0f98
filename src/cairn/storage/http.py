"""A read-only store over plain HTTP(S) GETs: a public bucket, a bucket website or a CDN in
front of a mirror (docs/mirror.md §6), read without credentials.

- An object ``name`` is at ``BASE/name``, its bytes percent-encoded (all but the unreserved
  characters and ``/``), so a key with ``?``, ``#``, ``%``, ``+`` or spaces reaches the object of
  that very name.
- ``read`` asks for its range with a ``Range`` header; a server that ignores it (200 and the
  whole body) still gives the right bytes, skipped to and cut here, and the rest of that body
  is kept open for the thread's next read where this one ended: an object read in order from
  such a server is downloaded once, not once per read. ``stat`` is a HEAD, or a GET of the
  first byte where a server refuses HEAD.
- Bodies are taken as sent (``Accept-Encoding: identity``, nothing decoded): what is read is
  the object's bytes, which a mirror's reader checks against their hash.
- There is no listing over plain HTTP: ``list`` fails, as do ``write`` and ``delete``.
- Errors are one-line StorageErrors naming the URL; a 404 is ObjectMissing. Server errors,
  throttling (429) and lost connections are TransientStorageError, which the retry wrapper of
  the store stack retries (``cairn.storage.retry``: the one retry policy), as for S3. A
  connection refused by a host that has never answered (a mistyped URL, most likely) fails
  at once.

Requests go through one urllib3 pool (keep-alive connections, ``connections`` of them per
host, for the threads that read at once) with connect and read timeouts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import urllib3
import urllib3.exceptions

from cairn.core.errors import ObjectMissing, StorageError, TransientStorageError
from cairn.storage.archive import ArchiveStore
from cairn.storage.base import Content, read_into_by_read
from cairn.storage.objectlock import ObjectLockStore
from cairn.storage.versions import VersionStore

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_REDIRECTS = 5
_SKIP = 1 << 20


class HttpStorage:
    archive: ArchiveStore | None = None  # no storage classes seen over plain HTTP
    versions: VersionStore | None = None  # no object versions
    object_lock: ObjectLockStore | None = None  # no retention periods

    def __init__(
        self,
        base_url: str,
        *,
        connections: int = 8,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise StorageError(f"not an http:// or https:// URL: {base_url}")
        if parts.query or parts.fragment:
            raise StorageError(f"a base URL takes no query or fragment: {base_url}")
        if parts.username or parts.password:
            raise StorageError("a base URL must not carry credentials")
        self.base = base_url.rstrip("/")
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=connections,
            block=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            # no retries here: the store stack's retry wrapper retries what is transient
            retries=urllib3.Retry(
                total=None, connect=0, read=0, status=0, other=0, redirect=_REDIRECTS
            ),
            headers={"User-Agent": "cairn", "Accept-Encoding": "identity"},
        )
        self._answered = False  # whether the host has answered in this store's lifetime
        self._local = threading.local()  # a thread's parked stream (``_from_stream``)

    def describe(self) -> str:
        return self.base

    def url(self, name: str) -> str:
        if not name or name.startswith("/"):
            raise StorageError(f"invalid object name {name!r}")
        return f"{self.base}/{quote(name.encode('utf-8', 'surrogateescape'), safe='/')}"

    # ------------------------------------------------------------------ reads
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("a negative offset or length")
        if length == 0:
            self.stat(name)  # a missing object is still missing
            return b""
        url = self.url(name)
        parked = self._unpark(name, offset)
        if parked is not None:
            return self._from_stream(url, name, parked, offset, 0, length)
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        response = self._request("GET", url, name, headers, preload=False)
        status = response.status
        if status == 200:  # the whole object: a server that ignores ranges
            return self._from_stream(url, name, response, offset, offset, length)
        try:
            data = self._body(url, response)
        finally:
            response.release_conn()
        if status == 416:  # the range starts at or past the end
            return b""
        got = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if got is None or int(got.group(1)) != offset:
            raise StorageError(f"{url}: the server answered another range than asked")
        return data if length is None else data[:length]

    def _from_stream(
        self,
        url: str,
        name: str,
        response: urllib3.BaseHTTPResponse,
        offset: int,
        skip: int,
        length: int | None,
    ) -> bytes:
        """``length`` bytes (None: all) of a whole object's body after ``skip`` bytes. What
        is left is kept open for this thread's next read at the offset that follows: a file
        read in order from a server that ignores ranges is downloaded once, not once per
        read."""
        try:
            while skip:
                skipped = len(response.read(min(skip, _SKIP)))
                if not skipped:
                    return b""
                skip -= skipped
            data = response.read() if length is None else response.read(length)
        except urllib3.exceptions.HTTPError as e:
            _discard(response)
            raise self._failed(url, e) from None
        if length is None or len(data) < length:
            response.release_conn()
        else:
            self._park(name, offset + len(data), response)
        return data

    def _park(self, name: str, offset: int, response: urllib3.BaseHTTPResponse) -> None:
        self._unpark("", -1)
        self._local.parked = (name, offset, response)

    def _unpark(self, name: str, offset: int) -> urllib3.BaseHTTPResponse | None:
        """The stream parked for ``name`` at ``offset``, if this thread has it; a stream
        parked at another place is dropped."""
        parked = getattr(self._local, "parked", None)
        if parked is None:
            return None
        self._local.parked = None
        if parked[:2] == (name, offset):
            response: urllib3.BaseHTTPResponse = parked[2]
            return response
        _discard(parked[2])
        return None

    def _body(self, url: str, response: urllib3.BaseHTTPResponse) -> bytes:
        try:
            return response.read()
        except urllib3.exceptions.HTTPError as e:
            _discard(response)
            raise self._failed(url, e) from None

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        return read_into_by_read(self, name, offset, out)

    def stat(self, name: str) -> int:
        url = self.url(name)
        response = self._request("HEAD", url, name, {}, missing_ok_methods=True)
        if response.status in (405, 501):  # no HEAD here: a GET of the first byte
            response = self._request("GET", url, name, {"Range": "bytes=0-0"}, preload=False)
            _discard(response)  # one byte at most is left unread, or a whole object
            if response.status == 416:
                return 0  # an empty object has no first byte
            if response.status == 206:
                got = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
                return _size(url, got.group(3) if got is not None else None)
        return _size(url, response.headers.get("Content-Length"))

    # ------------------------------------------------------------------ no writes, no listing
    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        raise StorageError(f"{self.base}: a plain HTTP store cannot be listed")

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        raise StorageError(f"{self.url(name)}: a plain HTTP store is read-only")

    def delete(self, name: str) -> None:
        raise StorageError(f"{self.url(name)}: a plain HTTP store is read-only")

    # ------------------------------------------------------------------ requests
    def _request(
        self,
        method: str,
        url: str,
        name: str,
        headers: dict[str, str],
        *,
        missing_ok_methods: bool = False,
        preload: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """One request, its body read unless not ``preload``; raises the store's errors for
        anything but 200, 206, 416 (and 405/501 for ``missing_ok_methods``: a server without
        HEAD)."""
        try:
            response = self._pool.request(
                method, url, headers=headers, preload_content=preload, decode_content=False
            )
        except urllib3.exceptions.HTTPError as e:
            raise self._failed(url, e) from None
        self._answered = True
        status = response.status
        if status in (200, 206, 416) or (missing_ok_methods and status in (405, 501)):
            return response
        if not preload:
            _discard(response)
        if status in (404, 410):
            missing = ObjectMissing(name)
            missing.args = (f"{url}: no such object (HTTP {status})",)
            raise missing
        reason = f"HTTP {status} {response.reason or ''}".rstrip()
        if status in _TRANSIENT_STATUS or status >= 500:
            raise TransientStorageError(f"{url}: {reason}")
        if status in (401, 403):
            raise StorageError(f"{url}: access denied ({reason}); is the object public?")
        raise StorageError(f"{url}: {reason}")

    def _failed(self, url: str, e: urllib3.exceptions.HTTPError) -> StorageError:
        cause: BaseException = e
        if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
            cause = e.reason
        if isinstance(cause, urllib3.exceptions.MaxRetryError | urllib3.exceptions.ResponseError):
            return StorageError(f"{url}: too many redirects")
        text = str(cause).split(": ", 1)[-1].replace("\n", " ")
        if isinstance(cause, urllib3.exceptions.SSLError):
            return StorageError(f"{url}: TLS failed: {text}")
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            return StorageError(f"{url}: unknown host: {text}")
        if isinstance(cause, urllib3.exceptions.NewConnectionError) and not self._answered:
            return StorageError(f"{url}: cannot connect: {text}")
        return TransientStorageError(f"{url}: {text}")


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Drops a response whose body is not read to its end: its connection is closed, not
    reused with the rest of a body pending."""
    response.close()
    response.release_conn()


def _size(url: str, text: str | None) -> int:
    if text is None or not text.isdigit():
        raise StorageError(f"{url}: the server gives no size")
    return int(text)
