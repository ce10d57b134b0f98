"""One conformance suite for every backend (local directory, S3 on a real SeaweedFS server),
each also seen through the full wrapper stack the application builds."""

from __future__ import annotations

import os
import threading

import pytest

from cairn.app.context import StoreOptions, wrap_backend
from cairn.core.errors import ObjectMissing, StorageError
from cairn.storage.local import LocalStorage
from cairn.storage.s3 import S3Location, S3Options, S3Storage

MIB = 1 << 20


@pytest.fixture(params=["local", "s3", "local-stack", "s3-stack"])
def storage(request, tmp_path):  # type: ignore[no-untyped-def]
    kind = request.param
    if kind.startswith("local"):
        backend = LocalStorage(tmp_path / "store")
        (tmp_path / "store").mkdir()
    else:
        s3_url = request.getfixturevalue("s3_url")
        backend = S3Storage(
            S3Location.parse(s3_url),
            S3Options(multipart_threshold=6 * MIB, multipart_chunksize=5 * MIB),
        )
    if kind.endswith("stack"):
        return wrap_backend(backend, StoreOptions(limit_upload=1 << 20, limit_download=1 << 20))[0]
    return backend


def test_write_read_stat(storage):
    storage.write("config", b"hello world")
    assert storage.read("config") == b"hello world"
    assert storage.stat("config") == 11
    assert storage.read("config", 6) == b"world"
    assert storage.read("config", 0, 5) == b"hello"
    assert storage.read("config", 4, 3) == b"o w"


def test_nested_names_and_list(storage):
    names = {f"data/{i:02x}/{i:02x}{'a' * 62}": os.urandom(i + 1) for i in range(0, 40, 7)}
    for name, data in names.items():
        storage.write(name, data)
    storage.write("index/abc", b"i")
    storage.write("snapshots/def", b"s")
    listed = dict(storage.list("data/"))
    assert listed == {n: len(d) for n, d in names.items()}
    assert dict(storage.list("index/")) == {"index/abc": 1}
    assert set(dict(storage.list(""))) == {*names, "index/abc", "snapshots/def"}
    assert list(storage.list("nothing/")) == []


def test_missing_object(storage):
    with pytest.raises(ObjectMissing):
        storage.read("snapshots/" + "0" * 64)
    with pytest.raises(ObjectMissing):
        storage.stat("snapshots/" + "0" * 64)
    with pytest.raises(ObjectMissing):
        storage.read("snapshots/" + "0" * 64, 10, 5)
    storage.delete("snapshots/" + "0" * 64)  # deleting a missing object is fine


def test_delete(storage):
    storage.write("locks/x", b"1")
    storage.delete("locks/x")
    with pytest.raises(ObjectMissing):
        storage.stat("locks/x")
    assert list(storage.list("locks/")) == []


def test_rewriting_same_content_is_allowed(storage):
    storage.write("data/aa/aa", b"same")
    storage.write("data/aa/aa", b"same")
    assert storage.read("data/aa/aa") == b"same"


def test_empty_object(storage):
    storage.write("keys/empty", b"")
    assert storage.stat("keys/empty") == 0
    assert storage.read("keys/empty") == b""


def test_large_object_round_trip(storage):
    """Above the multipart threshold on S3 (6 MiB in this suite)."""
    data = os.urandom(13 * MIB + 123)
    storage.write("data/bb/big", memoryview(data), metadata=False)
    assert storage.stat("data/bb/big") == len(data)
    assert storage.read("data/bb/big") == data
    assert storage.read("data/bb/big", 7 * MIB, 1000) == data[7 * MIB : 7 * MIB + 1000]


def test_read_into_a_caller_buffer(storage):
    data = os.urandom(3 * MIB + 5)
    storage.write("data/cc/obj", memoryview(data), metadata=False)
    out = memoryview(bytearray(MIB + 10))
    assert storage.read_into("data/cc/obj", 2 * MIB - 3, out[:MIB]) == MIB
    assert out[:MIB] == data[2 * MIB - 3 : 3 * MIB - 3]
    assert storage.read_into("data/cc/obj", 3 * MIB, out) == 5  # fewer where the object ends
    assert out[:5] == data[3 * MIB :]
    with pytest.raises(ObjectMissing):
        storage.read_into("data/cc/" + "0" * 64, 0, out[:10])


def test_concurrent_writers(storage):
    payloads = {f"data/cc/{i:04d}": os.urandom(50_000) for i in range(24)}
    errors = []

    def put(items):  # type: ignore[no-untyped-def]
        try:
            for n, d in items:
                storage.write(n, d)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    items = list(payloads.items())
    threads = [threading.Thread(target=put, args=(items[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dict(storage.list("data/cc/")) == {n: len(d) for n, d in payloads.items()}
    for n, d in payloads.items():
        assert storage.read(n) == d


def test_invalid_names_refused_locally(tmp_path):
    store = LocalStorage(tmp_path)
    for bad in ("../escape", "/abs", "a/../../b"):
        with pytest.raises(StorageError):
            store.write(bad, b"x")
    assert not (tmp_path.parent / "escape").exists()


def test_storage_class_only_for_data_packs(s3_url, s3_env):
    loc = S3Location.parse(s3_url)
    store = S3Storage(loc, S3Options(storage_class="STANDARD_IA"))
    store.write("data/aa/datapack", b"d", metadata=False)
    store.write("data/bb/treepack", b"t")
    store.write("index/idx", b"i")
    client = s3_env.client()

    def cls(name):  # type: ignore[no-untyped-def]
        return client.head_object(Bucket=loc.bucket, Key=loc.prefix + name).get(
            "StorageClass", "STANDARD"
        )

    assert cls("data/aa/datapack") == "STANDARD_IA"
    assert cls("data/bb/treepack") == "STANDARD"
    assert cls("index/idx") == "STANDARD"


def test_s3_url_parsing():
    loc = S3Location.parse("s3:https://s3.example.com:9000/my-bucket/some/prefix/")
    assert (loc.endpoint, loc.bucket, loc.prefix) == (
        "https://s3.example.com:9000",
        "my-bucket",
        "some/prefix/",
    )
    loc = S3Location.parse("s3://bucket-name")
    assert (loc.endpoint, loc.bucket, loc.prefix) == (None, "bucket-name", "")
    assert str(S3Location.parse("s3://bkt/p/q")) == "s3://bkt/p/q"
    for bad in ("s3://ab/x", "s3:ftp://h/b/x", "s3:https:///bucket"):
        with pytest.raises(Exception, match=r"S3 URL|bucket"):
            S3Location.parse(bad)
