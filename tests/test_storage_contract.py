"""One conformance suite for every backend (local directory, S3 on a real SeaweedFS server, the
in-memory store for tests), each also seen through the full wrapper stack the application
builds, and once with a transient fault injected into every first call (the retry wrapper must
hide them all). Stores with storage classes (S3, with archived objects simulated at its
transport, and the in-memory store) pass the same archive contract."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime

import pytest

from cairn.app.context import StackHooks, StoreOptions, stack_hooks, wrap_backend
from cairn.core.errors import ObjectArchived, ObjectMissing, StorageError
from cairn.storage.archive import ARCHIVED, READABLE, RESTORED, RESTORING
from cairn.storage.base import SpooledContent, content_chunks, content_reader, content_size
from cairn.storage.faulty import FaultyStorage
from cairn.storage.local import LocalStorage
from cairn.storage.memory import MemoryStorage
from cairn.storage.retry import RetryPolicy
from cairn.storage.s3 import S3Location, S3Options, S3Storage
from tests.archive_sim import ArchiveSimulator
from tests.s3server import BUCKET

MIB = 1 << 20
NO_WAIT = RetryPolicy(base_delay=0.0)


def once_each(faulty: FaultyStorage) -> FaultyStorage:
    """Every operation fails (transiently) the first time it meets a name; a listing after
    yielding one name."""
    for op in ("read", "read_into", "write", "stat", "list", "delete"):
        seen: set[str] = set()

        def first(name: str, seen: set[str] = seen) -> bool:
            new = name not in seen
            seen.add(name)
            return new

        faulty.fail(op, first, after=1 if op == "list" else 0)
    return faulty


@pytest.fixture(
    params=["local", "s3", "memory", "local-stack", "s3-stack", "memory-stack", "faulty-stack"]
)
def storage(request, tmp_path):  # type: ignore[no-untyped-def]
    kind = request.param
    if kind.startswith("local"):
        backend = LocalStorage(tmp_path / "store")
        (tmp_path / "store").mkdir()
    elif kind.startswith("s3"):
        s3_url = request.getfixturevalue("s3_url")
        backend = S3Storage(
            S3Location.parse(s3_url),
            S3Options(multipart_threshold=6 * MIB, multipart_chunksize=5 * MIB),
        )
    else:
        backend = MemoryStorage()
    options = StoreOptions(limit_upload=1 << 20, limit_download=1 << 20)
    if kind == "faulty-stack":
        hooks = StackHooks(wrappers=(lambda b: once_each(FaultyStorage(b)),), retry=NO_WAIT)
        with stack_hooks(hooks):
            return wrap_backend(backend, options)[0]
    if kind.endswith("stack"):
        return wrap_backend(backend, options)[0]
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


@pytest.mark.parametrize("size", [0, 5, 2 * MIB + 17, 13 * MIB + 5])
def test_content_spooled_in_a_file(storage, tmp_path, size):
    """A pack built in a temporary file goes up from the file, below and above the multipart
    threshold, and every attempt of a retried write reads it from the start."""
    data = os.urandom(size)
    with open(tmp_path / "spool", "w+b") as f:
        f.write(data + b"trailing bytes that are not part of the object")
        f.flush()
        storage.write("data/dd/spooled", SpooledContent(f.fileno(), size), metadata=False)
    assert storage.stat("data/dd/spooled") == size
    assert storage.read("data/dd/spooled") == data


def test_content_reader_seeks_and_reads_in_parts(tmp_path):
    data = os.urandom(3000)
    with open(tmp_path / "spool", "w+b") as f:
        f.write(data)
        f.flush()
        for content in (data, memoryview(data), SpooledContent(f.fileno(), 2500)):
            size = content_size(content)
            reader = content_reader(content)
            assert reader.read(1000) == data[:1000]
            assert reader.read() == data[1000:size]
            assert reader.read(10) == b""
            reader.seek(-100, os.SEEK_END)
            assert reader.tell() == size - 100
            assert reader.read() == data[size - 100 : size]
            assert b"".join(bytes(c) for c in content_chunks(content, 700)) == data[:size]


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
    for store in (LocalStorage(tmp_path), MemoryStorage()):
        for bad in ("../escape", "/abs", "a/../../b", ""):
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


# ------------------------------------------------------------------ the archive capability
@pytest.fixture(params=["memory", "s3", "memory-stack", "s3-stack"])
def archiving(request):  # type: ignore[no-untyped-def]
    """A store with storage classes that archives its data (writes with metadata=False go to
    GLACIER), and what makes the restores requested so far readable."""
    kind = request.param
    ready: Callable[[], None]
    if kind.startswith("memory"):
        memory = MemoryStorage(classes=True, data_class="GLACIER")
        backend, ready = memory, memory.finish_restores
    else:
        sim = ArchiveSimulator(BUCKET, delay=3600.0)
        s3 = S3Storage(
            S3Location.parse(request.getfixturevalue("s3_url")), S3Options(storage_class="GLACIER")
        )
        sim.attach(s3.client)

        def ready() -> None:
            sim.delay = 0.0

        backend = s3
    if kind.endswith("stack"):
        return wrap_backend(backend, StoreOptions())[0], ready
    return backend, ready


def test_listing_with_storage_classes(archiving):
    store, _ = archiving
    store.write("index/i", b"index")
    store.write("data/aa/cold", b"d" * 100, metadata=False)
    archive = store.archive
    assert archive is not None
    infos = {i.name: i for i in archive.list_with_class("")}
    assert {n: i.size for n, i in infos.items()} == dict(store.list(""))
    assert {n: i.storage_class for n, i in infos.items()} == {
        "index/i": "STANDARD",
        "data/aa/cold": "GLACIER",
    }
    assert all(isinstance(i.modified, datetime) for i in infos.values())
    assert [i.name for i in archive.list_with_class("data/")] == ["data/aa/cold"]


def test_archived_objects_are_read_only_once_restored(archiving):
    store, ready = archiving
    store.write("index/i", b"index")
    store.write("data/aa/cold", b"d" * 100, metadata=False)
    archive = store.archive
    assert store.stat("data/aa/cold") == 100
    with pytest.raises(ObjectArchived):
        store.read("data/aa/cold", 10, 20)
    assert archive.restore_status("index/i") == READABLE
    with pytest.raises(StorageError, match="not in an archive storage class"):
        archive.request_restore("index/i", 1, "Standard")
    assert archive.restore_status("data/aa/cold") == ARCHIVED
    archive.request_restore("data/aa/cold", 1, "Standard")
    archive.request_restore("data/aa/cold", 1, "Standard")  # in progress: not an error
    assert archive.restore_status("data/aa/cold") == RESTORING
    with pytest.raises(ObjectArchived):
        store.read("data/aa/cold")
    ready()
    assert archive.restore_status("data/aa/cold") == RESTORED
    assert store.read("data/aa/cold", 10, 20) == b"d" * 20


def test_stores_without_storage_classes_offer_no_archive(tmp_path):
    for backend in (LocalStorage(tmp_path), MemoryStorage()):
        assert backend.archive is None
        assert wrap_backend(backend, StoreOptions(limit_upload=1))[0].archive is None
