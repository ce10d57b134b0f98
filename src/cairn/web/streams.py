"""A use case that writes to a stream (a dump), turned into chunks an HTTP response pulls.

The use case runs on its own thread and writes into a small bounded queue (back-pressure: it
never gets more than ``DEPTH`` chunks ahead of the client); the response takes the chunks as
the client reads them. Nothing is spooled to a file. The response starts only once the use
case has opened its output (the snapshot and the path found), so a wrong one is an error page,
not a truncated download; a client that goes away makes the writer's next write fail, which
stops the use case.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

DEPTH = 16
CHUNK = 1 << 20
_END = object()


class QueueWriter:
    """A file-like object for the use case: ``write`` blocks while the queue is full."""

    def __init__(self, bridge: StreamBridge) -> None:
        self._bridge = bridge
        self._buf = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        if not self._buf and len(data) >= CHUNK // 4 and isinstance(data, bytes):
            self._bridge.put(data)  # a large piece goes as it is, not copied twice
            return len(data)
        self._buf += data
        if len(self._buf) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buf:
            self._bridge.put(bytes(self._buf))
            self._buf.clear()


class StreamBridge:
    def __init__(
        self, produce: Callable[[Callable[[Any], AbstractContextManager[Any]]], Any]
    ) -> None:
        """``produce(output)`` runs the use case; ``output(info)`` opens the writer (``info``:
        what the use case found, for the response's headers)."""
        self._produce = produce
        self._queue: queue.Queue[object] = queue.Queue(DEPTH)
        self._started = threading.Event()
        self._closed = threading.Event()
        self.info: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cairn-download", daemon=True)

    def put(self, chunk: object) -> None:
        while True:
            if self._closed.is_set():
                raise BrokenPipeError("the client went away")
            try:
                self._queue.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue

    @contextmanager
    def _output(self, info: Any) -> Iterator[QueueWriter]:
        self.info = info
        self._started.set()
        writer = QueueWriter(self)
        yield writer
        writer.flush()

    def _run(self) -> None:
        try:
            self._produce(self._output)
        except BaseException as e:
            self.error = e
        finally:
            self._started.set()
            try:
                self.put(_END)
            except BrokenPipeError:
                pass

    def start(self) -> None:
        """Starts the use case and waits until it has opened its output, or failed."""
        self._thread.start()
        self._started.wait()
        if self.info is None and self.error is not None:
            raise self.error

    def chunks(self) -> Iterator[bytes]:
        try:
            while True:
                chunk = self._queue.get()
                if chunk is _END:
                    break
                assert isinstance(chunk, bytes)
                yield chunk
        finally:
            self._closed.set()
        if self.error is not None and not isinstance(self.error, BrokenPipeError):
            # the headers are gone: all that is left is to cut the download short
            raise self.error
