"""Calls started now and waited for later: the requests of a step that do not need one another's
answers, sent at once; or reads of a long list (pack headers, whole packs) kept a few ahead of
the code that takes them.

On an object store every request waits a round trip. Where a step's requests do not depend on
one another (opening a repository: its config and its key files; a backup: its lock and the
snapshots, then the locks and the index) ``Overlap`` sends them on a few threads, and the code
takes each answer where it needs it, as it would have made the call there.

``Overlap(0)`` has no threads: each call is made when its result is first asked for, in the
thread that asks. A store without latency (a local directory) then sees the calls one after
another, as the code asks for the results, at no cost in threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
A = TypeVar("A")


class Pending(Generic[T]):
    """The result of a call started by ``Overlap.start``: ``result()`` waits for it (or, without
    threads, makes the call the first time), and returns its value or raises its error."""

    def __init__(self, future: Future[T] | None, call: Callable[[], T] | None = None) -> None:
        self._future = future
        self._call = call  # without threads: the call, made on the first ``result()``
        self._value: T | None = None
        self._error: BaseException | None = None

    def result(self) -> T:
        if self._future is not None:
            return self._future.result()
        if self._call is not None:
            call, self._call = self._call, None
            try:
                self._value = call()
            except BaseException as e:
                self._error = e
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Overlap:
    """Calls made on up to ``threads`` threads while the caller goes on (``with Overlap(n) as
    o:``); leaving the block cancels the calls not started and waits for the others, whose
    results nobody took."""

    def __init__(self, threads: int, name: str = "cairn-requests") -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name) if threads else None

    def __enter__(self) -> Overlap:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def start(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """``fn(*args)``, started now (without threads: when its result is asked for)."""
        if self._pool is None:
            return Pending(None, lambda: fn(*args))
        return Pending(self._pool.submit(fn, *args))

    def map(
        self, fn: Callable[[A], T], items: Iterable[A], ahead: int | None = None
    ) -> Iterator[tuple[A, Pending[T]]]:
        """``(item, fn(item))`` for each of ``items``, in order; at most ``ahead`` (by default
        twice as many as there are threads) calls are started and not yet handed out, so what
        waits to be taken (a whole pack, each) does not grow with the number of items."""
        limit = max(1, ahead if ahead is not None else 2 * self.threads)
        waiting: deque[tuple[A, Pending[T]]] = deque()
        for item in items:
            waiting.append((item, self.start(fn, item)))
            if len(waiting) >= limit:
                yield waiting.popleft()
        while waiting:
            yield waiting.popleft()
