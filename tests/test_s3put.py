"""The mirror's small PUTs (cairn.storage.s3put) against the real SeaweedFS: what they write
(content type, storage class, ETag as a HEAD gives it), that they leave botocore out, that a
body corrupted on the wire is refused, and how their failures are classed for the retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cairn.core.errors import StorageError, TransientStorageError
from cairn.storage.metered import MeteredStorage
from cairn.storage.retry import RetryingStorage, RetryPolicy
from cairn.storage.s3 import S3Storage
from cairn.storage.s3config import S3Location, S3Options
from cairn.storage.s3put import LARGEST
from cairn.storage.throttle import ThrottledObjects
from tests.test_storage_objects import Bucket
from tests.wire import WireProxy

NO_WAITS = RetryPolicy(base_delay=0.0)


def _through(url: str, endpoint: str, **options: object) -> S3Storage:
    loc = S3Location.parse(url)
    return S3Storage(S3Location(loc.bucket, loc.prefix, endpoint), S3Options(**options))  # type: ignore[arg-type]


def _target(url: str) -> tuple[str, int]:
    host, port = S3Location.parse(url).endpoint.removeprefix("http://").split(":")  # type: ignore[union-attr]
    return host, int(port)


@pytest.fixture
def corrupting(s3_url: str) -> Iterator[WireProxy]:
    proxy = WireProxy(_target(s3_url), replace=(b"CORRUPT-ME", b"CORRUPTED!"))
    yield proxy
    proxy.close()


def _sent_by_botocore(store: S3Storage) -> list[str]:
    sent: list[str] = []
    store.client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(request.method)
    )
    return sent


def test_small_puts_keep_type_and_class_and_leave_botocore_out(s3_url, s3_env) -> None:
    store = S3Storage(S3Location.parse(s3_url), S3Options(storage_class="STANDARD_IA"))
    sent = _sent_by_botocore(store)
    objects = store.objects
    plain = objects.put_object("a.txt", b"alpha", content_type="text/plain")
    cold = objects.put_object("dir/b c.bin", b"beta", content_type="application/x-b", cold=True)
    assert sent == []
    client, loc = s3_env.client(), S3Location.parse(s3_url)
    a = client.head_object(Bucket=loc.bucket, Key=loc.prefix + "a.txt")
    b = client.head_object(Bucket=loc.bucket, Key=loc.prefix + "dir/b c.bin")
    assert (a["ContentType"], a.get("StorageClass", "STANDARD"), a["ETag"]) == (
        "text/plain",
        "STANDARD",
        plain,
    )
    assert (b["ContentType"], b["StorageClass"], b["ETag"]) == (
        "application/x-b",
        "STANDARD_IA",
        cold,
    )
    assert objects.head("a.txt").etag == plain  # type: ignore[union-attr]
    assert store.read("dir/b c.bin") == b"beta"
    # content read from a file, or larger than LARGEST, stays botocore's
    objects.put_object("big", bytes(LARGEST + 1), content_type="application/octet-stream")
    assert sent == ["HEAD", "GET", "PUT"]  # the HEAD and the GET above, then this PUT


def test_a_body_corrupted_on_the_wire_is_refused(s3_url, s3_env, corrupting) -> None:
    store = _through(s3_url, corrupting.endpoint)
    sent = _sent_by_botocore(store)
    objects = store.objects
    with pytest.raises(StorageError, match="BadDigest") as refused:
        objects.put_object("doc", b"a body to CORRUPT-ME on the way", content_type="text/plain")
    assert not isinstance(refused.value, TransientStorageError)
    assert objects.head("doc") is None
    assert objects.put_object("doc", b"an honest body", content_type="text/plain")
    assert store.read("doc") == b"an honest body"
    assert sent == ["HEAD", "GET"]  # the PUTs went up outside botocore


def test_dropped_connections_are_transient_and_retried(s3_url, s3_env) -> None:
    proxy = WireProxy(_target(s3_url))
    try:
        store = _through(s3_url, proxy.endpoint)
        proxy.drop = 1  # the connection closed as soon as it is made: no answer
        with pytest.raises(TransientStorageError):
            store.objects.put_object("x", b"x", content_type="text/plain")
        proxy.drop = 2
        retrying = RetryingStorage(store, NO_WAITS).objects
        assert retrying is not None
        retrying.put_object("x", b"x", content_type="text/plain")
        assert proxy.dropped == 3 and store.read("x") == b"x"
    finally:
        proxy.close()


def test_refused_credentials_are_not_retried(s3_url, s3_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not the secret")
    objects = S3Storage(S3Location.parse(s3_url)).objects
    with pytest.raises(StorageError, match="access denied") as refused:
        objects.put_object("x", b"x", content_type="text/plain")
    assert not isinstance(refused.value, TransientStorageError)


def test_the_stack_counts_and_throttles_the_small_puts(s3_url, s3_env) -> None:
    """The small PUTs leave botocore but not the wrappers: each is one PUT with its bytes in
    the usage, and takes its bytes from the upload cap (--limit-upload)."""
    store = S3Storage(S3Location.parse(s3_url))
    sent = _sent_by_botocore(store)
    meter = MeteredStorage(store)
    bucket = Bucket()
    objects = ThrottledObjects(meter.objects, bucket)  # type: ignore[arg-type]
    objects.put("a", b"x" * 10, content_type="text/plain")
    objects.put("b", b"y" * 2000, content_type="text/plain")
    usage = meter.snapshot()
    assert (usage.put, usage.bytes_up, bucket.taken, sent) == (2, 2010, [10, 2000], [])
