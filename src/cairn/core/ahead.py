"""Calls made ahead on threads, results taken in order: for reads that each wait a round trip
on an object store (pack headers, whole packs), where one after the other would add up the
latency of every one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_ahead(
    fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int | None = None
) -> Iterator[tuple[T, Future[R]]]:
    """``(item, future of fn(item))`` in the order of ``items``, at most ``ahead`` (default
    ``2 * workers``) calls made before the consumer takes them, so what they hold stays bounded.
    With ``workers`` below 2, each call is made when its item is taken, on the calling thread."""
    if workers < 2:
        for item in items:
            done: Future[R] = Future()
            try:
                done.set_result(fn(item))
            except Exception as e:  # handed to the consumer, as a pool's future would
                done.set_exception(e)
            yield item, done
        return
    limit = max(1, ahead if ahead is not None else 2 * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cairn-ahead") as pool:
        pending: deque[tuple[T, Future[R]]] = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) >= limit:
                    yield pending.popleft()
            while pending:
                yield pending.popleft()
        finally:
            for _, future in pending:
                future.cancel()
