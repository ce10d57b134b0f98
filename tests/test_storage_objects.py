"""The object capability (cairn.storage.objects: what a mirror needs) on every backend (local
directory, S3 on a real SeaweedFS server, the in-memory store), each also through the wrapper
stack the application builds and once with a transient fault injected into every first call;
then resumed uploads in parts, and what each wrapper does to the capability's requests."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from cairn.app.context import StackHooks, StoreOptions, stack_hooks, wrap_backend
from cairn.core.errors import ObjectMissing, StorageError, TransientStorageError
from cairn.storage.base import (
    SpooledContent,
    Storage,
    StorageWrapper,
    content_chunks,
    content_reader,
    content_slice,
)
from cairn.storage.faulty import FaultyStorage
from cairn.storage.local import LocalStorage
from cairn.storage.memory import MemoryStorage
from cairn.storage.metered import MeteredStorage
from cairn.storage.objectops import ObjectWrapper
from cairn.storage.objects import MAX_PARTS, CopyTooLarge, Multipart, ObjectStore, Part
from cairn.storage.retry import RetryingObjects, RetryPolicy
from cairn.storage.s3 import S3Location, S3Options, S3Storage
from cairn.storage.throttle import ThrottledObjects
from tests.faults import RawBody
from tests.s3server import BUCKET

MIB = 1 << 20
NO_WAIT = RetryPolicy(base_delay=0.0)
PLAN = Multipart(threshold=6 * MIB, part_size=5 * MIB)  # S3's smallest part is 5 MiB
BIG = 3 * PLAN.part_size + 123  # four parts, the last one short


@dataclass
class Store:
    kind: str
    storage: Storage
    objects: ObjectStore


def s3_backend(url: str, **options: Any) -> S3Storage:
    return S3Storage(
        S3Location.parse(url),
        S3Options(
            multipart_threshold=PLAN.threshold, multipart_chunksize=PLAN.part_size, **options
        ),
    )


def backend_of(kind: str, request: pytest.FixtureRequest, root: Any) -> Storage:
    if kind.startswith("local"):
        root.mkdir()
        return LocalStorage(root)
    if kind.startswith("s3"):
        return s3_backend(request.getfixturevalue("s3_url"))
    return MemoryStorage(multipart=PLAN)


def once_each(faulty: FaultyStorage) -> FaultyStorage:
    """Every request of the capability fails (transiently) the first time it meets a name."""
    for op in ("put_object", "create", "head", "copy", "start_upload", "upload_part"):
        seen: set[str] = set()

        def first(name: str, seen: set[str] = seen) -> bool:
            new = name not in seen
            seen.add(name)
            return new

        faulty.fail(op, first)
    return faulty


@pytest.fixture(
    params=["local", "s3", "memory", "local-stack", "s3-stack", "memory-stack", "faulty-stack"]
)
def store(request, tmp_path):  # type: ignore[no-untyped-def]
    kind = request.param
    backend = backend_of(kind, request, tmp_path / "store")
    options = StoreOptions(limit_upload=256 * 1024, limit_download=256 * 1024)  # 256 MiB/s
    storage = backend
    if kind == "faulty-stack":
        hooks = StackHooks(wrappers=(lambda b: once_each(FaultyStorage(b)),), retry=NO_WAIT)
        with stack_hooks(hooks):
            storage = wrap_backend(backend, options)[0]
    elif kind.endswith("stack"):
        storage = wrap_backend(backend, options)[0]
    objects = storage.objects
    assert objects is not None
    return Store(kind, storage, objects)


def test_put_returns_the_etag_head_gives(store):
    etag = store.objects.put("docs/a.txt", b"hello", content_type="text/plain")
    head = store.objects.head("docs/a.txt")
    assert head is not None and (head.size, head.etag) == (5, etag) and etag
    assert store.storage.read("docs/a.txt") == b"hello"
    assert dict(store.storage.list("docs/")) == {"docs/a.txt": 5}


def test_put_overwrites(store):
    first = store.objects.put("a/b/file", b"old content", content_type="text/plain")
    second = store.objects.put("a/b/file", b"new content", content_type="text/plain")
    assert store.storage.read("a/b/file") == b"new content"
    assert second != first
    assert store.objects.head("a/b/file").etag == second  # type: ignore[union-attr]
    assert dict(store.storage.list("a/")) == {"a/b/file": 11}


def test_ranged_reads_see_the_object_that_replaced_one_read_before(store):
    """(A local directory keeps descriptors of the objects it read open for ranged reads.)"""
    store.objects.put("f", b"0123456789", content_type="text/plain")
    out = memoryview(bytearray(4))
    assert store.storage.read("f", 2, 4) == b"2345"
    assert store.storage.read_into("f", 2, out) == 4 and out == b"2345"
    store.objects.put("f", b"abcdefghij", content_type="text/plain")
    assert store.storage.read("f", 2, 4) == b"cdef"
    assert store.storage.read_into("f", 2, out) == 4 and out == b"cdef"
    store.objects.put("g", b"ABCDEFGHIJ", content_type="text/plain")
    store.objects.copy("g", "f", content_type="text/plain")
    assert store.storage.read("f", 2, 4) == b"CDEF"


def test_create_only_once(store):
    assert store.objects.create("heads/00000000000000000001", b'{"generation": 1}') is True
    assert store.objects.create("heads/00000000000000000001", b'{"other": 2}') is False
    assert store.storage.read("heads/00000000000000000001") == b'{"generation": 1}'
    assert store.objects.create("heads/00000000000000000002", b"") is True
    assert store.storage.stat("heads/00000000000000000002") == 0


def test_copy_on_the_server(store):
    data = os.urandom(100_000)
    store.objects.put("src.bin", data, content_type="application/octet-stream")
    etag = store.objects.copy("src.bin", "trash/1/src.html", content_type="text/html")
    assert store.storage.read("trash/1/src.html") == data
    head = store.objects.head("trash/1/src.html")
    assert head is not None and (head.size, head.etag) == (len(data), etag)
    if not store.kind.startswith("local"):  # a directory keeps no content type
        assert head.content_type == "text/html"
    store.objects.put("dst", b"x", content_type="text/plain")
    store.objects.copy("src.bin", "dst", content_type="text/plain")  # over an object
    assert store.storage.read("dst") == data
    with pytest.raises(ObjectMissing):
        store.objects.copy("missing", "elsewhere", content_type="text/plain")
    assert store.objects.head("elsewhere") is None
    # what a push calls: one request where the store copies in one
    store.objects.server_copy("src.bin", "trash/2/src", content_type="text/plain")
    assert store.storage.read("trash/2/src") == data


def test_head_of_a_missing_object_is_none(store):
    assert store.objects.head("nothing/here") is None


def test_the_repository_contract_stays_write_once(store):
    """``write`` keeps the first content of a name even after the capability wrote it."""
    store.objects.put("data/aa/x", b"first", content_type="text/plain")
    store.storage.write("data/aa/x", b"other")
    assert store.storage.read("data/aa/x") == b"first"


def test_large_content_goes_up_in_parts(store, tmp_path):
    data = os.urandom(BIG)
    with open(tmp_path / "file", "w+b") as f:
        f.write(b"ahead" + data)
        f.flush()
        content = SpooledContent(f.fileno(), len(data), offset=5)
        etag = store.objects.put("big/file.bin", content, content_type="application/x-thing")
    head = store.objects.head("big/file.bin")
    assert head is not None and (head.size, head.etag) == (len(data), etag)
    assert store.storage.read("big/file.bin") == data
    if store.objects.multipart is not None:
        assert etag.strip('"').endswith("-4")  # S3's ETag of an upload in four parts
        assert list(store.objects.uploads("")) == []


def test_local_etags_change_with_every_rewrite(tmp_path):
    objects = LocalStorage(tmp_path).objects
    etags = [objects.put("f", b"same bytes", content_type="text/plain") for _ in range(5)]
    assert len(set(etags)) == 5
    assert objects.head("f").etag == etags[-1]  # type: ignore[union-attr]
    st = os.stat(tmp_path / "f")
    assert etags[-1] == f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
    assert objects.multipart is None and list(objects.uploads("")) == []
    assert sorted(os.listdir(tmp_path)) == ["f"]  # no temporary file left


def test_cold_objects_take_the_storage_class(s3_url, s3_env):
    store = s3_backend(s3_url, storage_class="STANDARD_IA")
    store.objects.put("cold", b"c", content_type="text/plain", cold=True)
    store.objects.put("warm", b"w", content_type="text/plain")
    store.objects.put("cold-big", os.urandom(BIG), content_type="text/plain", cold=True)
    client = s3_env.client()
    loc = store.location

    def head(name: str) -> dict[str, Any]:
        return client.head_object(Bucket=loc.bucket, Key=loc.prefix + name)  # type: ignore[no-any-return]

    assert head("cold").get("StorageClass") == "STANDARD_IA"
    assert head("cold-big").get("StorageClass") == "STANDARD_IA"
    assert head("warm").get("StorageClass", "STANDARD") == "STANDARD"
    assert head("warm")["ContentType"] == "text/plain"
    store.objects.copy("warm", "copied", content_type="text/markdown")
    assert head("copied")["ContentType"] == "text/markdown"


def test_a_store_that_ignores_conditional_writes_is_refused(s3_url):
    store = s3_backend(s3_url)

    def not_implemented(request, **kwargs):  # type: ignore[no-untyped-def]
        if "If-None-Match" not in request.headers:
            return None
        body = b"<Error><Code>NotImplemented</Code><Message>no conditions</Message></Error>"
        return AWSResponse(request.url, 501, {"Content-Type": "application/xml"}, RawBody(body))

    store.client.meta.events.register("before-send.s3.PutObject", not_implemented)
    with pytest.raises(StorageError, match="ignores conditional writes; pushes to it are refused"):
        store.objects.create("heads/1", b"h")
    assert store.objects.head("heads/1") is None


def refuse_copies_as_too_large(client: Any) -> None:
    """The test server copies objects of any size; AWS refuses a source over 5 GiB thus: every
    CopyObject of ``client`` is answered so."""

    def too_large(request, **kwargs):  # type: ignore[no-untyped-def]
        body = (
            b"<Error><Code>InvalidRequest</Code><Message>The specified copy source is larger "
            b"than the maximum allowable size for a copy source: 5368709120</Message></Error>"
        )
        return AWSResponse(request.url, 400, {"Content-Type": "application/xml"}, RawBody(body))

    client.meta.events.register("before-send.s3.CopyObject", too_large)


def test_a_copy_over_5_gib_goes_in_parts_copied_on_the_server(s3_url):
    """Refused in one request (``CopyTooLarge``), a server-side copy is made in parts, each an
    UploadPartCopy of a range on the real server: nothing goes through this host; each
    request is counted."""
    backend = s3_backend(s3_url, copy_part_size=5 * MIB)
    data = os.urandom(2 * 5 * MIB + 12345)  # three parts
    backend.objects.put("huge.mkv", data, content_type="video/x-matroska")
    refuse_copies_as_too_large(backend.client)
    with pytest.raises(CopyTooLarge, match=r"^huge.mkv: over 5 GiB"):
        backend.objects.copy("huge.mkv", "elsewhere", content_type="text/plain")
    storage, meter = wrap_backend(backend, StoreOptions())
    objects = storage.objects
    assert objects is not None
    before = meter.snapshot()
    etag = objects.server_copy("huge.mkv", "films/huge.mkv", content_type="video/x-matroska")
    used = meter.snapshot().minus(before)
    # the refused copy, the start, three parts, the completion; a HEAD; no byte moved here
    assert (used.put, used.head, used.bytes_up, used.bytes_down) == (1 + 1 + 3 + 1, 1, 0, 0)
    assert storage.read("films/huge.mkv") == data
    head = objects.head("films/huge.mkv")
    assert head is not None and head.etag == etag and etag.endswith('-3"')
    assert head.content_type == "video/x-matroska"
    assert not list(objects.uploads("films/"))


def test_a_copy_in_parts_that_fails_leaves_no_upload_behind(s3_url):
    backend = s3_backend(s3_url, copy_part_size=5 * MIB)
    backend.objects.put("huge.mkv", os.urandom(2 * 5 * MIB), content_type="video/x-matroska")
    refuse_copies_as_too_large(backend.client)
    faulty = FaultyStorage(backend)
    faulty.fail("copy_part", "films/huge.mkv", transient=False, times=None)
    objects = faulty.objects
    assert objects is not None
    with pytest.raises(StorageError, match="injected"):
        objects.server_copy("huge.mkv", "films/huge.mkv", content_type="video/x-matroska")
    assert objects.head("films/huge.mkv") is None
    assert not list(backend.objects.uploads("films/"))  # aborted


# ------------------------------------------------------------------ uploads in parts
class Journal:
    """The uploads under way, as a push keeps them; ``stop_after`` parts, it interrupts."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.uploads: dict[str, tuple[str, dict[int, Part]]] = {}
        self.stop_after = stop_after

    def lookup(self, name: str) -> tuple[str, Sequence[Part]] | None:
        found = self.uploads.get(name)
        return None if found is None else (found[0], list(found[1].values()))

    def started(self, name: str, upload_id: str) -> None:
        self.uploads[name] = (upload_id, {})

    def part_done(self, name: str, upload_id: str, part: Part) -> None:
        self.uploads[name][1][part.number] = part
        if self.stop_after is not None and len(self.uploads[name][1]) >= self.stop_after:
            raise KeyboardInterrupt

    def finished(self, name: str) -> None:
        self.uploads.pop(name, None)


@pytest.fixture(params=["memory", "s3"])
def metered(request, tmp_path):  # type: ignore[no-untyped-def]
    """A store that uploads in parts, seen through the meter."""
    return MeteredStorage(backend_of(request.param, request, tmp_path / "store"))


def spooled(tmp_path: Any, data: bytes) -> SpooledContent:
    f = open(tmp_path / "source", "w+b")  # noqa: SIM115 - closed with the test's files
    f.write(data)
    f.flush()
    return SpooledContent(os.dup(f.fileno()), len(data))


def test_an_interrupted_upload_resumes_from_its_last_part(metered, tmp_path):
    data = os.urandom(BIG)
    content = spooled(tmp_path, data)
    objects = metered.objects
    journal = Journal(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        objects.put("big", content, content_type="text/plain", journal=journal)
    first = metered.snapshot()
    assert (first.put, first.bytes_up) == (1 + 2, 2 * PLAN.part_size)  # start, two parts
    assert objects.head("big") is None
    assert [u.name for u in objects.uploads("")] == ["big"]

    journal.stop_after = None
    before = metered.snapshot()
    etag = objects.put("big", content, content_type="text/plain", journal=journal)
    resumed = metered.snapshot().minus(before)
    # ListParts, then the two missing parts and the completion; nothing started again
    assert (resumed.list, resumed.put) == (1, 2 + 1)
    assert resumed.bytes_up == PLAN.part_size + 123
    assert metered.read("big") == data
    assert objects.head("big").etag == etag  # type: ignore[union-attr]
    assert journal.uploads == {}
    assert list(objects.uploads("")) == []


def test_a_resumed_upload_sends_again_a_part_that_would_differ(metered, tmp_path):
    """The journal and the listing agree on a part, but this content's bytes there are not
    the ones sent (a journal of other content): that part goes up again."""
    data = os.urandom(BIG)
    objects = metered.objects
    journal = Journal(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        objects.put("big", spooled(tmp_path, data), content_type="text/plain", journal=journal)
    changed = bytearray(data)
    changed[5] ^= 1  # in part 1
    journal.stop_after = None
    before = metered.snapshot()
    objects.put(
        "big", spooled(tmp_path, bytes(changed)), content_type="text/plain", journal=journal
    )
    resumed = metered.snapshot().minus(before)
    assert (resumed.list, resumed.put) == (1, 3 + 1)  # parts 1, 3 and 4, the completion
    assert resumed.bytes_up == 2 * PLAN.part_size + 123
    assert metered.read("big") == bytes(changed)


def test_an_upload_the_store_lost_starts_again(metered, tmp_path):
    data = os.urandom(BIG)
    content = spooled(tmp_path, data)
    objects = metered.objects
    journal = Journal(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        objects.put("big", content, content_type="text/plain", journal=journal)
    upload_id = journal.uploads["big"][0]
    objects.abort("big", upload_id)
    before = metered.snapshot()
    journal.stop_after = None
    objects.put("big", content, content_type="text/plain", journal=journal)
    again = metered.snapshot().minus(before)
    assert (again.list, again.put, again.bytes_up) == (1, 1 + 4 + 1, BIG)
    assert metered.read("big") == data


def test_a_failed_part_is_left_for_a_resume_and_stale_uploads_are_aborted(metered, tmp_path):
    faulty = FaultyStorage(metered)
    calls = iter(range(100))
    faulty.fail("upload_part", lambda name: next(calls) == 2, transient=False)
    objects = faulty.objects
    journal = Journal()
    with pytest.raises(StorageError, match="injected fault"):
        objects.put("a/big", os.urandom(BIG), content_type="text/plain", journal=journal)
    assert len(journal.uploads["a/big"][1]) == 2  # parts 1 and 2, kept
    with pytest.raises(KeyboardInterrupt):
        objects.put("b/big", os.urandom(BIG), content_type="text/plain", journal=Journal(1))
    pending = {u.name: u.upload_id for u in objects.uploads("")}
    assert set(pending) == {"a/big", "b/big"}
    assert objects.abort_stale("", keep={pending["b/big"]}) == 1
    assert [u.name for u in objects.uploads("")] == ["b/big"]
    assert objects.abort_stale("a/") == 0
    assert objects.abort_stale("b/") == 1
    assert list(objects.uploads("")) == []


def test_abort_stale_spares_the_uploads_started_since():
    times = iter([datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)])
    objects = MemoryStorage(multipart=PLAN, now=lambda: next(times)).objects
    old = objects.start_upload("old", content_type="text/plain")
    objects.start_upload("new", content_type="text/plain")
    assert objects.abort_stale("", before=datetime(2026, 1, 2, tzinfo=UTC)) == 1
    assert [u.name for u in objects.uploads("")] == ["new"]
    assert objects.list_parts("old", old) is None


def test_metering_counts_the_requests_s3_bills(metered):
    objects = metered.objects
    objects.put("small", b"x" * 100, content_type="text/plain")
    objects.head("small")
    objects.head("missing")
    objects.copy("small", "copy", content_type="text/plain")
    objects.create("created", b"y" * 10)
    objects.create("created", b"z" * 10)
    objects.put("big", os.urandom(BIG), content_type="text/plain")  # start, 4 parts, complete
    list(objects.uploads(""))
    u = metered.snapshot()
    assert (u.put, u.head, u.list, u.get) == (1 + 1 + 2 + 6, 2, 1, 0)
    assert u.bytes_up == 100 + 20 + BIG


def test_part_sizes_grow_past_the_most_parts_s3_allows():
    plan = Multipart(threshold=MIB, part_size=5 * MIB)
    assert plan.part_size_for(5 * MIB * MAX_PARTS) == 5 * MIB
    huge = 5 * MIB * MAX_PARTS + 1
    assert plan.part_size_for(huge) == 6 * MIB
    ranges = plan.ranges(huge)
    assert len(ranges) <= MAX_PARTS and sum(n for _, n in ranges) == huge
    assert [start for start, _ in ranges[:3]] == [0, 6 * MIB, 12 * MIB]


def test_content_slices_copy_nothing(tmp_path):
    data = os.urandom(5000)
    with open(tmp_path / "f", "w+b") as f:
        f.write(data)
        f.flush()
        for content in (data, SpooledContent(f.fileno(), 4000, offset=1000)):
            whole = b"".join(bytes(c) for c in content_chunks(content))
            part = content_slice(content, 1500, 2000)
            assert b"".join(bytes(c) for c in content_chunks(part, 300)) == whole[1500:3500]
            assert content_reader(part).read() == whole[1500:3500]


# ------------------------------------------------------------------ the wrappers
class LostResponses(ObjectWrapper):
    """The first create and completion land, and their answers are lost on the way back."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.lost = {"create", "complete_upload"}

    def create(self, name, data, *, content_type="application/octet-stream"):  # type: ignore[no-untyped-def]
        created = self.inner.create(name, data, content_type=content_type)
        self._lose("create")
        return created

    def complete_upload(self, name, upload_id, parts):  # type: ignore[no-untyped-def]
        etag = self.inner.complete_upload(name, upload_id, parts)
        self._lose("complete_upload")
        return etag

    def _lose(self, op: str) -> None:
        if op in self.lost:
            self.lost.discard(op)
            raise TransientStorageError(f"{op}: connection lost")


def test_a_retried_create_knows_its_own_object_after_a_lost_response():
    memory = MemoryStorage(multipart=PLAN)
    objects = RetryingObjects(LostResponses(memory.objects), NO_WAIT, memory.read)
    assert objects.create("heads/1", b"mine") is True
    assert memory.read("heads/1") == b"mine"
    assert objects.create("heads/1", b"mine") is False  # no doubt this time: it existed
    etag = objects.put("big", os.urandom(BIG), content_type="text/plain")
    assert etag == memory.objects.head("big").etag  # type: ignore[union-attr]


def test_a_retried_create_does_not_take_another_writers_object():
    memory = MemoryStorage()
    memory.objects.create("heads/1", b"theirs")
    memory.objects.create("heads/2", b"their")
    faulty = FaultyStorage(memory)
    faulty.fail("create", times=2)  # failed before they landed: the names were taken anyway
    objects = RetryingObjects(faulty.objects, NO_WAIT, memory.read)
    assert objects.create("heads/1", b"mine!!") is False  # same size, other bytes
    assert objects.create("heads/2", b"mine") is False  # other size
    assert memory.read("heads/1") == b"theirs"


class Bucket:
    def __init__(self) -> None:
        self.taken: list[int] = []

    def take(self, n: int) -> None:
        self.taken.append(n)


def test_throttling_caps_every_body_sent():
    memory = MemoryStorage(multipart=PLAN)
    bucket = Bucket()
    objects = ThrottledObjects(memory.objects, bucket)  # type: ignore[arg-type]
    objects.put("small", b"x" * 10, content_type="text/plain")
    objects.create("created", b"y" * 7)
    objects.copy("small", "copy", content_type="text/plain")
    objects.head("small")
    objects.put("big", os.urandom(BIG), content_type="text/plain")
    assert bucket.taken == [10, 7, *[PLAN.part_size] * 3, 123]


def test_faults_reach_every_request(tmp_path):
    faulty = FaultyStorage(MemoryStorage(multipart=PLAN))
    faulty.fail("complete_upload", transient=False)
    with pytest.raises(StorageError, match="injected fault"):
        faulty.objects.put("big", os.urandom(BIG), content_type="text/plain")
    assert (faulty.calls["start_upload"], faulty.calls["upload_part"]) == (1, 4)
    assert [u.name for u in faulty.objects.uploads("")] == ["big"]


def test_wrappers_offer_no_capability_where_the_store_has_none(tmp_path):
    class Plain(StorageWrapper):
        objects = None

    stack = wrap_backend(Plain(MemoryStorage()), StoreOptions(limit_upload=1))[0]
    assert stack.objects is None
    assert FaultyStorage(Plain(MemoryStorage())).objects is None


def test_s3_objects_keep_their_bucket_and_prefix(s3_url, s3_env):
    store = s3_backend(s3_url)
    store.objects.put("x/y", b"z", content_type="text/plain")
    client = s3_env.client()
    key = store.location.prefix + "x/y"
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"z"


def test_a_local_mirror_object_is_made_as_the_umask_allows(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "store").mkdir()
    store = LocalStorage(tmp_path / "store")
    objects = store.objects
    assert objects is not None
    old = os.umask(0o022)
    try:
        objects.put("d/put", b"x", content_type="text/plain")
        objects.copy("d/put", "d/copied", content_type="text/plain")
        assert objects.create("d/created", b"y")
        store.write("data/ab/private", b"z")  # a repository's object stays private
    finally:
        os.umask(old)
    for name in ("put", "copied", "created"):
        assert (tmp_path / "store" / "d" / name).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "store" / "data" / "ab" / "private").stat().st_mode & 0o777 == 0o600


def test_a_listing_gives_each_object_its_size_and_etag(store):  # type: ignore[no-untyped-def]
    objects = store.objects
    etags = {n: objects.put(n, n.encode() * 3, content_type="text/plain") for n in ("l/a", "l/b/c")}
    objects.put("other", b"x", content_type="text/plain")
    listed = dict(objects.listing("l/"))
    assert set(listed) == set(etags)
    for name, found in listed.items():
        assert found.size == 3 * len(name) and found.etag == etags[name] == objects.head(name).etag
