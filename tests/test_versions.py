"""The versions capability and the as-of view, in memory: the selection rule (against a
model, with hypothesis), the view's listings (one per listing unit, not one per object), its
refusals, the undelete plan, and the wrappers that count and retry the capability's calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.errors import ObjectMissing, StorageError
from cairn.ops.progress import NullProgress
from cairn.ops.undelete import HIDE, RESTORE, apply_undelete, plan_undelete
from cairn.repo.repository import Repository
from cairn.storage.faulty import FaultyStorage
from cairn.storage.memoryversions import VersionedMemoryStorage
from cairn.storage.metered import MeteredStorage
from cairn.storage.retry import RetryingStorage, RetryPolicy
from cairn.storage.versions import AsOfStorage, ObjectVersion, current, select
from tests.conftest import FAST_KDF, PASSWORD

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


class Clock:
    """Whole seconds, moved by the test: several entries may share one, as on SeaweedFS."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        return self.t

    def tick(self, seconds: int = 1) -> None:
        self.t += timedelta(seconds=seconds)


# ------------------------------------------------------------------ the selection rule
# a history: for each step, (name, what: "put" or "del", seconds advanced before it)
histories = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "d/c"]), st.sampled_from(["put", "del"]), st.integers(0, 2)
    ),
    max_size=25,
)


@given(histories, st.integers(-1, 40))
def test_select_is_the_state_after_the_last_event_at_or_before_the_time(history, at) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    store = VersionedMemoryStorage(now=clock)
    model: dict[str, bytes] = {}  # the state after each second: replayed to the time
    states: list[tuple[datetime, dict[str, bytes]]] = [(clock.t - timedelta(seconds=1), {})]
    for n, (name, what, advance) in enumerate(history):
        clock.tick(advance)
        if what == "put":
            store.overwrite(name, f"{name}{n}".encode())
            model[name] = f"{name}{n}".encode()
        else:
            store.delete(name)
            model.pop(name, None)
        states.append((clock.t, dict(model)))
    when = T0 + timedelta(seconds=at)
    # the last state whose time is at or before ``when`` (of equal times, the last event)
    expected = next((s for t, s in reversed(states) if t <= when), {})
    view = AsOfStorage(store, store.versions, when)
    assert dict(view.list("")) == {k: len(v) for k, v in expected.items()}
    for name in ("a", "b", "d/c"):
        if name in expected:
            assert view.read(name) == expected[name]
        else:
            with pytest.raises(ObjectMissing):
                view.read(name)


def test_equal_timestamps_follow_the_store_order() -> None:
    """A version and the delete marker over it in the same second: the marker is newer."""
    clock = Clock()
    store = VersionedMemoryStorage(now=clock)
    store.overwrite("x", b"1")
    store.delete("x")
    store.overwrite("y", b"old")
    store.overwrite("y", b"new")
    view = AsOfStorage(store, store.versions, T0)
    assert dict(view.list("")) == {"y": 3}
    assert view.read("y") == b"new"


def test_select_and_current_over_entries() -> None:
    def v(name: str, vid: str, sec: int, deleted: bool = False) -> ObjectVersion:
        return ObjectVersion(name, vid, T0 + timedelta(seconds=sec), 1, False, deleted)

    entries = [v("a", "3", 5, deleted=True), v("a", "2", 3), v("a", "1", 1), v("b", "4", 2)]
    assert {n: e.version_id for n, e in select(entries, T0 + timedelta(seconds=4)).items()} == {
        "a": "2",
        "b": "4",
    }
    assert select(entries, T0 + timedelta(seconds=5)).keys() == {"b"}
    assert select(entries, T0).keys() == set()
    assert {n: e.version_id for n, e in current(entries).items()} == {"a": "3", "b": "4"}


# ------------------------------------------------------------------ the view
class CountingVersions:
    """The capability of a store, counting its listings by prefix."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.listings: list[str] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def versions(self, prefix: str):  # type: ignore[no-untyped-def]
        self.listings.append(prefix)
        return self.inner.versions(prefix)


def test_the_view_lists_once_per_unit_and_refuses_writes() -> None:
    clock = Clock()
    store = VersionedMemoryStorage(now=clock)
    for i in range(50):
        store.write(f"data/ab/{i:03d}", bytes([i]) * 10)
    store.write("config", b"cfg")
    clock.tick()
    counting = CountingVersions(store.versions)
    view = AsOfStorage(store, counting, clock.t)
    for i in range(50):
        assert view.read(f"data/ab/{i:03d}", 2, 3) == bytes([i]) * 3
    assert view.stat("config") == 3
    assert counting.listings == ["data/ab/", "config"]
    assert len(list(view.list("data/"))) == 50
    assert view.read("data/ab/007") == bytes([7]) * 10  # served by either listing
    assert counting.listings == ["data/ab/", "config", "data/"]
    buf = bytearray(4)
    assert view.read_into("data/ab/001", 8, memoryview(buf)) == 2
    with pytest.raises(StorageError, match="read-only") as e:
        view.write("snapshots/x", b"x")
    assert "as of 2026-11-22T12:00:01+00:00 is read-only" in str(e.value)
    with pytest.raises(StorageError, match="cannot delete config"):
        view.delete("config")
    assert store.entries("config")[0].latest  # nothing was written
    assert view.archive is None and view.objects is None and view.versions is None


def test_the_view_reads_a_version_overwritten_since() -> None:
    clock = Clock()
    store = VersionedMemoryStorage(now=clock)
    store.write("k", b"good")
    then = clock.t
    clock.tick()
    store.overwrite("k", b"evil")
    store.write("new", b"n")
    view = AsOfStorage(store, store.versions, then)
    assert store.read("k") == b"evil" and view.read("k") == b"good"
    assert view.version_of("new") is None and view.first_written("new") == clock.t
    with pytest.raises(ValueError, match="time zone"):
        AsOfStorage(store, store.versions, datetime(2026, 1, 1))


# ------------------------------------------------------------------ the undelete plan
def test_the_plan_restores_and_hides_only_what_changed() -> None:
    clock = Clock()
    store = VersionedMemoryStorage(now=clock)
    for name in ("config", "keys/k", "data/ab/p", "index/i", "snapshots/s", "locks/old"):
        store.write(name, name.encode())
    then = clock.t
    clock.tick()
    store.delete("data/ab/p")  # deleted
    store.overwrite("index/i", b"garbage")  # overwritten
    store.overwrite("keys/k", b"keys/k")  # overwritten with the same bytes
    store.write("snapshots/bogus", b"x")  # added
    store.write("locks/new", b"x")  # someone's lock: left alone
    store.delete("locks/old")
    store.write("operations/run", b"x")  # a record of a run since: kept
    plan = plan_undelete(store.versions.versions(""), then)
    assert [(c.name, c.action) for c in plan.ordered()] == [
        ("snapshots/bogus", HIDE),
        ("data/ab/p", RESTORE),
        ("index/i", RESTORE),
    ]
    assert plan.restore[0].then is not None and plan.restore[0].then.version_id


def test_undelete_adds_versions_only() -> None:
    clock = Clock()
    store = VersionedMemoryStorage(now=clock)
    repo = Repository.create(store, PASSWORD.encode(), kdf=FAST_KDF)
    then = clock.t
    clock.tick()
    names = [n for n, _ in store.list("")]
    content = {n: store.read(n) for n in names}
    ids_before = {(n, e.version_id) for n in names for e in store.entries(n)}
    store.overwrite("config", b"garbage")
    store.delete(names[-1])
    store.write("stray", b"x")
    report = apply_undelete(repo, store.versions, then, NullProgress())
    assert sorted(report.restored) == sorted(["config", names[-1]]) and report.hidden == ["stray"]
    assert {n: store.read(n) for n, _ in store.list("")} == content
    ids_after = {(n, e.version_id) for n in [*names, "stray"] for e in store.entries(n)}
    assert ids_before < ids_after
    lock = [(e.deleted, e.latest) for e in store.versions.versions("locks/")]
    assert lock == [(True, True), (False, False)]  # it held a lock, and released it


# ------------------------------------------------------------------ the wrappers
def test_the_meter_counts_and_the_retry_retries_the_capability() -> None:
    clock = Clock()
    store = VersionedMemoryStorage(now=clock)
    for i in range(3):
        store.write(f"n{i}", b"abcd")
    faulty = FaultyStorage(store)
    meter = MeteredStorage(faulty)
    top = RetryingStorage(
        meter, RetryPolicy(attempts=3, jitter=False, base_delay=0, sleep=lambda _: None)
    )
    versions = top.versions
    assert versions is not None
    entries = list(versions.versions(""))
    assert len(entries) == 3
    assert versions.read_version("n1", entries[1].version_id, 1, 2) == b"bc"
    new = versions.restore_version("n1", entries[1].version_id)
    marker = versions.hide("n2")
    assert new and marker and versions.status() == "enabled"
    u = meter.snapshot()
    assert (u.list, u.get, u.put, u.delete, u.bytes_down) == (1, 2, 1, 1, 2)
    assert MeteredStorage(store).versions is not None
    assert RetryingStorage(VersionedMemoryStorage()).versions is not None


def test_the_view_through_the_stack_survives_transient_failures() -> None:
    """A listing of versions that fails part-way starts again and yields nothing twice; a
    read of a version that fails is retried: the view sits on top of the retry wrapper."""
    clock = Clock()
    store = VersionedMemoryStorage(now=clock)
    for i in range(5):
        store.write(f"d/{i}", bytes([i]) * 4)
    clock.tick()
    store.overwrite("d/3", b"evil")
    faulty = FaultyStorage(store)
    faulty.fail("versions", "d/", after=2, times=1)
    faulty.fail("read_version", "d/3", times=2)
    policy = RetryPolicy(attempts=3, jitter=False, base_delay=0, sleep=lambda _: None)
    top = RetryingStorage(MeteredStorage(faulty), policy)
    assert top.versions is not None
    view = AsOfStorage(top, top.versions, T0)
    assert dict(view.list("d/")) == {f"d/{i}": 4 for i in range(5)}
    assert view.read("d/3") == bytes([3]) * 4
    assert faulty.calls["versions"] == 2 and faulty.calls["read_version"] == 3
