"""Fault injection at the S3 transport: the real S3Storage and boto3 client talk to the real
server, and a botocore ``before-send`` hook drops connections, answers 503 or stalls for a
chosen share of requests. Deterministic for a given seed.

``on_s3_client(attach)`` makes such a hook (or any other handler, tests/archive_sim.py) part of
every S3 store a command opens: it is one of the wrappers of ``app.context.StackHooks``."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions
from botocore.awsrequest import AWSResponse

from cairn.storage.base import Storage
from cairn.storage.s3 import S3Storage

_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>injected</Message></Error>"
)


def on_s3_client(attach: Callable[[Any], None]) -> Callable[[Storage], Storage]:
    """A stack hook that calls ``attach(client)`` with the boto3 client of an S3 backend (and
    leaves other backends alone), for ``StackHooks.wrappers``."""

    def hook(backend: Storage) -> Storage:
        if isinstance(backend, S3Storage):
            attach(backend.client)
        return backend

    return hook


class RawBody:
    """The body of a made-up HTTP response, as botocore reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        yield self._body

    def read(self, *args, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
        body, self._body = self._body, b""
        return body


@dataclass
class FaultPlan:
    drop: float = 0.0  # share of requests whose connection is dropped
    unavailable: float = 0.0  # share answered 503
    slow: float = 0.0  # share delayed by `delay` seconds
    delay: float = 0.5
    seed: int = 1
    operations: frozenset[str] = frozenset()  # e.g. {"PutObject"}; empty: all
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def hook(self, request, event_name: str, **kwargs):  # type: ignore[no-untyped-def]
        op = event_name.rsplit(".", 1)[-1]
        if self.operations and op not in self.operations:
            return None
        with self._lock:
            roll = self._rng.random()
        if roll < self.drop:
            self._count("drop")
            raise botocore.exceptions.ConnectionClosedError(endpoint_url=request.url)
        roll -= self.drop
        if roll < self.unavailable:
            self._count("503")
            body = _SLOW_DOWN if self._rng.random() < 0.5 else _UNAVAILABLE
            return AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, RawBody(body))
        roll -= self.unavailable
        if roll < self.slow:
            self._count("slow")
            time.sleep(self.delay)
        return None

    def attach(self, client) -> None:  # type: ignore[no-untyped-def]
        client.meta.events.register("before-send.s3", self.hook)
