"""A TCP proxy that shapes a link: a one-way delay each direction, a bandwidth cap shared by
every connection, and (for tests) connections reset part-way.

    python -m bench.shape_proxy LISTEN_PORT UPSTREAM_PORT --rtt-ms 20 --mbit 100

Chunks are delivered ``rtt/2`` after they were read, serialized at the capped rate of the
shared link (one budget per direction for all connections, as on a real uplink), with at most
``buffer_kib`` queued per connection and direction (so senders feel back-pressure). With
``reset_every=N``, every Nth connection is reset (RST, not a clean close) once it has carried
``reset_after`` bytes downstream: a client sees a connection lost in the middle of a response.
With ``reset_every_bytes=B``, the connection carrying the downstream byte that crosses each
multiple of B is reset, half-way through the chunk: resets in proportion to the data.
Loopback only. ``ShapedLink`` runs it on a thread of its own, for tests and the bench runner.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import threading


class _Link:
    def __init__(
        self,
        upstream: int,
        rtt_ms: float,
        mbit: float,
        buffer_kib: int,
        reset_every: int,
        reset_after: int,
        reset_every_bytes: int = 0,
        log: list[tuple[int, int, float, float, int, bytes]] | None = None,
        catch_up: bool = False,
    ) -> None:
        self.upstream = upstream
        self.catch_up = catch_up
        self.log = log  # (connection, way, read at, delivered at, length, first bytes) each
        self.delay = rtt_ms / 2000
        self.rate = mbit * 1e6
        self.maxq = max(1, buffer_kib // 64)
        self.reset_every = reset_every
        self.reset_after = reset_after
        self.reset_every_bytes = reset_every_bytes  # downstream: each time this many more pass
        self.up, self.down = [0.0], [0.0]  # when each direction's link is next free
        self.connections = 0
        self.resets = 0
        self.carried = [0, 0]  # bytes delivered upstream, downstream

    async def handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        reset = self.reset_every > 0 and conn % self.reset_every == 0
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            cw.close()
            return
        budget = self.reset_after if reset else None
        await asyncio.gather(
            self._pipe(cr, uw, self.up, None, cw, 0, conn),
            self._pipe(ur, cw, self.down, budget, uw, 1, conn),
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: list[float],
        budget: int | None,
        other: asyncio.StreamWriter,
        way: int,
        conn: int = 0,
    ) -> None:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=self.maxq)

        async def rx() -> None:
            while True:
                data = await reader.read(65536)
                await q.put((loop.time() + self.delay, data))  # read at: this less the delay
                if not data:
                    return

        async def tx() -> None:
            left = budget
            while True:
                t, data = await q.get()
                now = loop.time()
                if t > now:
                    await asyncio.sleep(t - now)
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                if left is not None and len(data) >= left:
                    writer.write(data[:left])
                    await writer.drain()
                    self.resets += 1
                    _reset(writer)
                    _reset(other)
                    return
                if left is not None:
                    left -= len(data)
                every = self.reset_every_bytes
                if (
                    way == 1
                    and every
                    and (self.carried[1] + len(data)) // every > self.carried[1] // every
                ):
                    self.carried[1] += len(data) // 2
                    writer.write(data[: len(data) // 2])
                    await writer.drain()
                    self.resets += 1
                    _reset(writer)
                    _reset(other)
                    return
                if self.rate:
                    # a chunk goes on the link when it is free, from now on; or, with
                    # ``catch_up``, from when the chunk was due, should the proxy have run late
                    due = min(t, loop.time()) if self.catch_up else loop.time()
                    link[0] = max(link[0], due) + len(data) * 8 / self.rate
                    wait = link[0] - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                writer.write(data)
                self.carried[way] += len(data)
                if self.log is not None:
                    self.log.append((conn, way, t - self.delay, loop.time(), len(data), data[:256]))
                await writer.drain()

        rx_task = asyncio.ensure_future(rx())
        try:
            await tx()
        except (ConnectionError, OSError):
            pass
        finally:
            rx_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await rx_task
            writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Closes with a RST: linger on, timeout zero."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ShapedLink:
    """The proxy on a thread of its own: ``port`` leads to 127.0.0.1:``upstream``."""

    def __init__(
        self,
        upstream: int,
        rtt_ms: float = 20,
        mbit: float = 100,
        *,
        buffer_kib: int = 1024,
        reset_every: int = 0,
        reset_after: int = 0,
        reset_every_bytes: int = 0,
        port: int = 0,
        log: list[tuple[int, int, float, float, int, bytes]] | None = None,
        catch_up: bool = False,
    ) -> None:
        """``catch_up``: when the proxy itself runs late (its event loop did not get the CPU
        when a chunk was due), the link's time counts from when the chunk was due, as a link of
        its own would have carried it, rather than being lost. ``log``: every chunk carried is appended to it, as (connection number, 0 upstream or
        1 downstream, when the proxy read it, when it delivered it, its length, its first 256
        bytes), times on ``time.monotonic``'s clock (the event loop's)."""
        self._link = _Link(
            upstream,
            rtt_ms,
            mbit,
            buffer_kib,
            reset_every,
            reset_after,
            reset_every_bytes,
            log,
            catch_up,
        )
        self._want_port = port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shaped-link", daemon=True)
        self.port = 0

    @property
    def resets(self) -> int:
        return self._link.resets

    @property
    def bytes_down(self) -> int:
        """Bytes delivered from the server to the clients so far."""
        return self._link.carried[1]

    @property
    def bytes_up(self) -> int:
        """Bytes delivered from the clients to the server so far (requests, bodies, headers)."""
        return self._link.carried[0]

    @property
    def connections(self) -> int:
        return self._link.connections

    def __enter__(self) -> ShapedLink:
        self._thread.start()
        self._ready.wait(10)
        if not self.port:
            raise RuntimeError("the shaping proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._link.handle, "127.0.0.1", self._want_port)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("listen", type=int)
    ap.add_argument("upstream", type=int)
    ap.add_argument("--rtt-ms", type=float, default=20)
    ap.add_argument("--mbit", type=float, default=100)
    ap.add_argument("--buffer-kib", type=int, default=1024)
    ap.add_argument("--reset-every", type=int, default=0)
    ap.add_argument("--reset-after", type=int, default=0)
    a = ap.parse_args()
    link = ShapedLink(
        a.upstream,
        a.rtt_ms,
        a.mbit,
        buffer_kib=a.buffer_kib,
        reset_every=a.reset_every,
        reset_after=a.reset_after,
        port=a.listen,
    )
    with link, contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
