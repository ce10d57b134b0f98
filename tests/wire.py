"""A TCP proxy in front of a real server that does to the bytes on the wire what a faulty
network would: rewrites bytes of what the client sends (same length, so the request stays
well-formed and only its body differs), or closes the first connections as soon as they are
accepted. Stopped with ``close``."""

from __future__ import annotations

import socket
import threading


class WireProxy:
    def __init__(self, target: tuple[str, int], *, replace: tuple[bytes, bytes] | None = None):
        if replace is not None and len(replace[0]) != len(replace[1]):
            raise ValueError("the replacement must keep the length")
        self.target = target
        self.replace = replace
        self.drop = 0  # connections still to close at once
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self.drop:
                    self.drop -= 1
                    self.dropped += 1
                    client.close()
                    continue
            server = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if upstream and self.replace is not None:
                    data = data.replace(*self.replace)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for s in self._open:
                s.close()
