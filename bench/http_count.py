"""An HTTP/1.1 proxy that counts: placed in front of an S3 server, it forwards every
connection byte for byte and counts the requests by method, the answers by status and the
body bytes each way, so that two clients are counted the same way whatever they report of
themselves.

Signed S3 requests pass unchanged: the client signs the Host it connects to (the proxy's),
and the server checks the signature against the Host header it receives, the same one.
Only the message framing is parsed (Content-Length, chunked, 1xx interim answers, HEAD
answers without a body); the bytes are never altered or held back.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

_BUF = 1 << 18


@dataclass
class Request:
    """One request as it went over the wire, when the proxy keeps them (``entries``): its
    time, method, target (path and query), the storage class it asked for, body bytes each
    way and the answer's status."""

    time: float
    method: str
    target: str
    storage_class: str | None = None
    up: int = 0
    down: int = 0
    status: int = 0


@dataclass
class Counts:
    requests: Counter[str] = field(default_factory=Counter)  # by method; COPY apart
    statuses: Counter[int] = field(default_factory=Counter)
    body_up: int = 0
    body_down: int = 0
    wire_up: int = 0
    wire_down: int = 0

    def total(self) -> int:
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "total": self.total(),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "bytes_up": self.body_up,
            "bytes_down": self.body_down,
            "wire_up": self.wire_up,
            "wire_down": self.wire_down,
        }


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return lines[0], fields


class _Framer:
    """Follows one direction of a connection message by message; ``feed`` is given every
    chunk as it passes and reports heads and body lengths to the proxy."""

    def __init__(self, proxy: CountingProxy, methods: deque[Request], response: bool) -> None:
        self.proxy = proxy
        self.methods = methods
        self.response = response
        self.state = "head"
        self.buf = b""
        self.remaining = 0
        self.current: Request | None = None

    def _body(self, n: int) -> None:
        self.proxy._add_body(n, self.response)
        if self.current is not None:
            if self.response:
                self.current.down += n
            else:
                self.current.up += n

    def _head(self, head: bytes) -> None:
        first, fields = _headers(head)
        te = fields.get("transfer-encoding", "").lower()
        length = int(fields.get("content-length", "0") or 0)
        if self.response:
            status = int(first.split(" ", 2)[1])
            if 100 <= status < 200:
                return  # an interim answer: the final one follows
            self.current = self.methods.popleft() if self.methods else None
            method = self.current.method if self.current else ""
            if self.current is not None:
                self.current.status = status
            self.proxy._add_response(status)
            if method == "HEAD" or status in (204, 304):
                return
            if "chunked" in te:
                self.state = "size"
            elif "content-length" in fields:
                self.state, self.remaining = "body", length
            else:
                self.state = "rest"  # delimited by the close
        else:
            method, target = [*first.split(" "), "", ""][:2]
            self.current = Request(
                time.time(), method, target, fields.get("x-amz-storage-class") or None
            )
            self.methods.append(self.current)
            # a server-side copy (CopyObject, UploadPartCopy) is a PUT that names its source
            kind = "COPY" if "x-amz-copy-source" in fields else method
            self.proxy._add_request(kind, first, self.current)
            if "chunked" in te:
                self.state = "size"
            elif length:
                self.state, self.remaining = "body", length
        if self.state == "body" and self.remaining == 0:
            self.state = "head"

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self.state == "rest":
                self._body(n - i)
                return
            if self.state in ("body", "data"):
                take = min(self.remaining, n - i)
                if self.state == "body":
                    self._body(take)
                else:  # chunk data and its CRLF; the CRLF is no body
                    self._body(max(0, min(take, self.remaining - 2)))
                self.remaining -= take
                i += take
                if self.remaining == 0:
                    self.state = "head" if self.state == "body" else "size"
                continue
            # a head, a chunk-size line or trailer lines: find where it ends
            end = b"\r\n\r\n" if self.state in ("head", "trailer") else b"\r\n"
            pre = len(self.buf)
            self.buf += data[i:]
            k = self.buf.find(end)
            if self.state == "trailer" and self.buf.startswith(b"\r\n"):
                k, end = 0, b"\r\n"  # no trailer fields: the empty line alone
            if k < 0:
                if len(self.buf) > 1 << 20:
                    raise ValueError("an HTTP head longer than 1 MiB")
                return
            i += k + len(end) - pre
            line, self.buf = self.buf[:k], b""
            if self.state == "head":
                if not line:
                    continue  # stray CRLF between messages
                self._head(line)
            elif self.state == "size":
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.state = "trailer"
                else:
                    self.state, self.remaining = "data", size + 2
            else:
                self.state = "head"


class CountingProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.lock = threading.Lock()
        self.counts = Counts()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stop = False
        self.log: list[str] | None = None  # request lines, when a list is put here
        self.entries: list[Request] | None = None  # every request, when a list is put here
        threading.Thread(target=self._accept, daemon=True).start()

    def take(self) -> Counts:
        """The counts since the last ``take``."""
        with self.lock:
            counts, self.counts = self.counts, Counts()
        return counts

    def close(self) -> None:
        self._stop = True
        self.sock.close()

    def _add_request(self, kind: str, line: str, request: Request) -> None:
        with self.lock:
            self.counts.requests[kind] += 1
            if self.log is not None:
                self.log.append(line)
            if self.entries is not None:
                self.entries.append(request)

    def _add_response(self, status: int) -> None:
        with self.lock:
            self.counts.statuses[status] += 1

    def _add_body(self, n: int, down: bool) -> None:
        with self.lock:
            if down:
                self.counts.body_down += n
            else:
                self.counts.body_up += n

    def _add_wire(self, n: int, down: bool) -> None:
        with self.lock:
            if down:
                self.counts.wire_down += n
            else:
                self.counts.wire_up += n

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            methods: deque[Request] = deque()
            up = _Framer(self, methods, response=False)
            down = _Framer(self, methods, response=True)
            done = threading.Barrier(2, action=lambda c=client, s=server: (c.close(), s.close()))
            for src, dst, framer, is_down in (
                (client, server, up, False),
                (server, client, down, True),
            ):
                threading.Thread(
                    target=self._pump, args=(src, dst, framer, is_down, done), daemon=True
                ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        framer: _Framer,
        down: bool,
        done: threading.Barrier,
    ) -> None:
        try:
            while True:
                data = src.recv(_BUF)
                if not data:
                    break
                framer.feed(data)  # before forwarding: a request is known before its answer
                self._add_wire(len(data), down)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            try:
                done.wait(timeout=600)
            except threading.BrokenBarrierError:
                pass
