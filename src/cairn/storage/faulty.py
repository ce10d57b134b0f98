"""A wrapper that injects faults and events into any store and counts its calls, for tests.

- ``fail(op, match)`` makes the calls of ``op`` on matching names fail: with a
  ``TransientStorageError`` (which the retry wrapper retries), or with ``transient=False`` a
  ``StorageError`` (or with the ``error`` given); ``times`` times, or always. A listing may
  fail after it yielded ``after`` items (all, if it has fewer), as when a connection is lost
  part-way.
- ``before(op, match, callback)`` runs ``callback`` before a matching call (once, unless
  ``times`` says otherwise): another command interleaved at an exact moment.
- ``calls`` counts the calls of each operation and ``log`` records each one, faulted or not.

``op`` is one of ``OPERATIONS``: the store's own, and its archive, object and versions
capabilities' (wrapped when the inner store has them; an upload in parts is its requests,
each faulted on its own: ``upload_part`` fails a part). ``match`` is a name prefix ('' for
every name; a listing is matched by the prefix it lists) or a predicate on the name. Rules
apply in the order they were added; a call runs every matching callback, then fails with
the first matching fault.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cairn.core.errors import StorageError, TransientStorageError
from cairn.storage.archive import ArchiveStore, ObjectInfo
from cairn.storage.base import Content, Storage, StorageWrapper
from cairn.storage.objectops import ObjectWrapper
from cairn.storage.objects import DEFAULT_TYPE, ObjectHead, ObjectStore, Part, PendingUpload
from cairn.storage.versions import ObjectVersion, VersionStore

T = TypeVar("T")

OPERATIONS = frozenset(
    {
        "read",
        "read_into",
        "write",
        "stat",
        "list",
        "delete",
        "list_with_class",
        "request_restore",
        "restore_status",
        "put_object",
        "create",
        "head",
        "copy",
        "copy_part",
        "start_upload",
        "upload_part",
        "list_parts",
        "complete_upload",
        "abort",
        "uploads",
        "listing",
        "status",
        "versions",
        "read_version",
        "restore_version",
        "hide",
    }
)
_LISTINGS = frozenset({"list", "list_with_class", "uploads", "listing", "versions"})

Match = str | Callable[[str], bool]


@dataclass(frozen=True)
class Call:
    op: str
    name: str  # the object, or the prefix a listing lists
    offset: int = 0  # reads: where the read starts
    length: int | None = None  # reads: the bytes asked for (None: to the end)


@dataclass
class _Rule:
    op: str
    match: Callable[[str], bool]
    times: int | None  # None: every time
    error: Callable[[str], Exception] | None = None
    after: int = 0
    callback: Callable[[], None] | None = None


class FaultyStorage(StorageWrapper):
    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.calls: Counter[str] = Counter()
        self.log: list[Call] = []

    # ------------------------------------------------------------------ what to inject
    def fail(
        self,
        op: str,
        match: Match = "",
        *,
        transient: bool = True,
        times: int | None = None,
        after: int = 0,
        error: Exception | None = None,
    ) -> None:
        """Makes matching calls of ``op`` fail (``times`` times, or always)."""
        if after and op not in _LISTINGS:
            raise ValueError(f"only a listing can fail part-way, not {op}")
        kind = TransientStorageError if transient else StorageError

        def make(name: str) -> Exception:
            return error if error is not None else kind(f"{name}: injected fault")

        self._add(_Rule(op, _matcher(match), times, error=make, after=after))

    def before(
        self, op: str, match: Match, callback: Callable[[], None], *, times: int | None = 1
    ) -> None:
        """Runs ``callback`` before matching calls of ``op`` (``times`` times, None: always)."""
        self._add(_Rule(op, _matcher(match), times, callback=callback))

    def _add(self, rule: _Rule) -> None:
        if rule.op not in OPERATIONS:
            raise ValueError(f"unknown operation {rule.op!r} (one of {sorted(OPERATIONS)})")
        with self._lock:
            self._rules.append(rule)

    # ------------------------------------------------------------------ every call
    def check(
        self, op: str, name: str, offset: int = 0, length: int | None = None
    ) -> tuple[int, Exception] | None:
        """What every call goes through first: it is counted and logged, the matching callbacks
        run, and a matching fault is raised, or for a listing that fails part-way returned as
        (items to yield first, error)."""
        callbacks = []
        fault: _Rule | None = None
        with self._lock:
            self.calls[op] += 1
            self.log.append(Call(op, name, offset, length))
            for rule in self._rules:
                if rule.op != op or rule.times == 0 or not rule.match(name):
                    continue
                if rule.callback is not None:
                    callbacks.append(rule.callback)
                elif fault is None:
                    fault = rule
                else:
                    continue
                if rule.times is not None:
                    rule.times -= 1
        for callback in callbacks:  # outside the lock: they may use this store
            callback()
        if fault is None or fault.error is None:
            return None
        if fault.after:
            return fault.after, fault.error(name)
        raise fault.error(name)

    # ------------------------------------------------------------------ the store
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self.check("read", name, offset, length)
        return self.inner.read(name, offset, length)

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        self.check("read_into", name, offset, len(out))
        return self.inner.read_into(name, offset, out)

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        self.check("write", name)
        self.inner.write(name, data, metadata=metadata)

    def stat(self, name: str) -> int:
        self.check("stat", name)
        return self.inner.stat(name)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        late = self.check("list", prefix)
        items = self.inner.list(prefix)
        return items if late is None else _failing(items, *late)

    def delete(self, name: str) -> None:
        self.check("delete", name)
        self.inner.delete(name)

    @property
    def archive(self) -> ArchiveStore | None:
        inner = self.inner.archive
        return None if inner is None else FaultyArchive(inner, self)

    @property
    def objects(self) -> ObjectStore | None:
        inner = self.inner.objects
        return None if inner is None else FaultyObjects(inner, self)

    @property
    def versions(self) -> VersionStore | None:
        inner = self.inner.versions
        return None if inner is None else FaultyVersions(inner, self)


class FaultyArchive:
    """An archive capability whose calls go through ``faults`` (counted, faulted) first."""

    def __init__(self, inner: ArchiveStore, faults: FaultyStorage) -> None:
        self.inner = inner
        self.faults = faults

    def list_with_class(self, prefix: str) -> Iterator[ObjectInfo]:
        late = self.faults.check("list_with_class", prefix)
        items = self.inner.list_with_class(prefix)
        return items if late is None else _failing(items, *late)

    def request_restore(self, name: str, days: int, tier: str) -> None:
        self.faults.check("request_restore", name)
        self.inner.request_restore(name, days, tier)

    def restore_status(self, name: str) -> str:
        self.faults.check("restore_status", name)
        return self.inner.restore_status(name)


class FaultyVersions:
    """A versions capability whose calls go through ``faults`` (counted, faulted) first; the
    bucket's status is matched by the name ''."""

    def __init__(self, inner: VersionStore, faults: FaultyStorage) -> None:
        self.inner = inner
        self.faults = faults

    def status(self) -> str:
        self.faults.check("status", "")
        return self.inner.status()

    def versions(self, prefix: str) -> Iterator[ObjectVersion]:
        late = self.faults.check("versions", prefix)
        items = self.inner.versions(prefix)
        return items if late is None else _failing(items, *late)

    def read_version(
        self, name: str, version_id: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        self.faults.check("read_version", name, offset, length)
        return self.inner.read_version(name, version_id, offset, length)

    def restore_version(
        self, name: str, version_id: str, *, storage_class: str | None = None
    ) -> str:
        self.faults.check("restore_version", name)
        return self.inner.restore_version(name, version_id, storage_class=storage_class)

    def hide(self, name: str) -> str:
        self.faults.check("hide", name)
        return self.inner.hide(name)


class FaultyObjects(ObjectWrapper):
    """An object capability whose requests go through ``faults`` (counted, faulted) first; a
    copy is matched by its destination."""

    def __init__(self, inner: ObjectStore, faults: FaultyStorage) -> None:
        super().__init__(inner)
        self.faults = faults

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        self.faults.check("put_object", name)
        return self.inner.put_object(name, data, content_type=content_type, cold=cold)

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool:
        self.faults.check("create", name)
        return self.inner.create(name, data, content_type=content_type)

    def head(self, name: str) -> ObjectHead | None:
        self.faults.check("head", name)
        return self.inner.head(name)

    def copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        self.faults.check("copy", dst)
        return self.inner.copy(src, dst, content_type=content_type, cold=cold)

    def copy_part(
        self, name: str, upload_id: str, number: int, src: str, start: int, length: int
    ) -> Part:
        self.faults.check("copy_part", name)
        return self.inner.copy_part(name, upload_id, number, src, start, length)

    def start_upload(self, name: str, *, content_type: str, cold: bool = False) -> str:
        self.faults.check("start_upload", name)
        return self.inner.start_upload(name, content_type=content_type, cold=cold)

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part:
        self.faults.check("upload_part", name)
        return self.inner.upload_part(name, upload_id, number, data)

    def list_parts(self, name: str, upload_id: str) -> dict[int, Part] | None:
        self.faults.check("list_parts", name)
        return self.inner.list_parts(name, upload_id)

    def complete_upload(self, name: str, upload_id: str, parts: Sequence[Part]) -> str:
        self.faults.check("complete_upload", name)
        return self.inner.complete_upload(name, upload_id, parts)

    def abort(self, name: str, upload_id: str) -> None:
        self.faults.check("abort", name)
        self.inner.abort(name, upload_id)

    def uploads(self, prefix: str) -> Iterator[PendingUpload]:
        late = self.faults.check("uploads", prefix)
        items = self.inner.uploads(prefix)
        return items if late is None else _failing(items, *late)

    def listing(self, prefix: str) -> Iterator[tuple[str, ObjectHead]]:
        late = self.faults.check("listing", prefix)
        items = self.inner.listing(prefix)
        return items if late is None else _failing(items, *late)


def _failing(items: Iterable[T], after: int, error: Exception) -> Iterator[T]:
    """The first ``after`` of ``items`` (or all, if there are fewer), then ``error``."""
    for n, item in enumerate(items):
        if n == after:
            raise error
        yield item
    raise error


def _matcher(match: Match) -> Callable[[str], bool]:
    if callable(match):
        return match
    return lambda name: name.startswith(match)
