"""A small threaded HTTP server over a directory, as a public bucket or a CDN serves one: GET
(with a single ``Range``: 206, or 416 past the end), HEAD, 404. Knobs make it a server that
ignores ranges, refuses HEAD, or answers 503 to the next few requests.

    with serve(root) as server:
        HttpStorage(server.url)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-answer (a pull that closed its connection) is no error
        of the server's: nothing goes to the stderr the tests read. Anything else is printed."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = os.fsencode(root)
        self.ignore_range = False
        self.no_head = False
        self.fail_next = 0  # requests still to answer with 503
        self.status: dict[bytes, int] = {}  # path -> the status it is answered with, no body
        self.requests: list[tuple[str, bytes, str | None]] = []  # (method, path, Range)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        if self.server.no_head:
            self._answer(405, b"")
            return
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        path = unquote_to_bytes(urlsplit(self.path).path)
        wanted = self.headers.get("Range")
        server = self.server
        with server.lock:
            server.requests.append((self.command, path, wanted))
            if server.fail_next:
                server.fail_next -= 1
                self._answer(503, b"busy\n")
                return
            if path in server.status:
                self._answer(server.status[path], b"")
                return
        parts = [p for p in path.split(b"/") if p]
        if any(p in (b".", b"..") for p in parts):
            self._answer(400, b"bad path\n")
            return
        full = os.path.join(server.root, *parts) if parts else server.root
        try:
            with open(full, "rb") as f:
                data = f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            self._answer(404, b"not found\n")
            return
        match = _RANGE.fullmatch(wanted or "")
        if match is None or server.ignore_range:
            self._answer(200, data)
            return
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(data) - 1
        if start >= len(data):
            self._answer(416, b"", extra={"Content-Range": f"bytes */{len(data)}"})
            return
        end = min(end, len(data) - 1)
        extra = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        self._answer(206, data[start : end + 1], extra=extra)

    def _answer(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD's answer has the length of a body, but none
            self.wfile.write(body)


@contextlib.contextmanager
def serve(root: Path) -> Iterator[Server]:
    server = Server(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
