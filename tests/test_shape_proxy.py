"""The benchmark proxy's link accounting, on a clock the test drives: with ``catch_up`` the link's
time counts from when a chunk was due, so a proxy that ran late delivers at once what the link
would have carried by then; without it, each chunk takes its time on the link from when the
proxy got to it. The proxy's log tells when each chunk was delivered."""

from __future__ import annotations

import asyncio

import pytest
from bench.shape_proxy import _Link

CHUNK = 65536  # what the proxy reads at a time
RTT_MS = 20  # so a chunk is due 10 ms after it was read
MBIT = CHUNK * 8 / 0.5 / 1e6  # a chunk takes 0.5 s on the link
LATE = 0.75  # the proxy gets the CPU back this long after delivering the first chunk


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


class Receiver:
    """The other end: takes what is written; the first ``drain`` returns ``LATE`` seconds on
    (the proxy's loop did not run meanwhile)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.got: list[bytes] = []
        self.late = True
        self.eof = False

    def write(self, data: bytes) -> None:
        self.got.append(data)

    async def drain(self) -> None:
        if self.late:
            self.clock.now += LATE
            self.late = False

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str) -> None:
        return None


def carry(catch_up: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float, int]]:
    """Three chunks, all read at once, through one direction of the link: (read at, delivered
    at, length) of each, as the proxy logs them."""
    clock = Clock()
    real_sleep = asyncio.sleep

    async def sleep(delay: float, result: object = None) -> object:
        clock.now += max(delay, 0.0)  # the time passes, at once
        await real_sleep(0)
        return result

    log: list[tuple[int, int, float, float, int, bytes]] = []
    link = _Link(0, RTT_MS, MBIT, 1024, 0, 0, log=log, catch_up=catch_up)
    receiver, sender = Receiver(clock), Receiver(clock)

    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(bytes(3 * CHUNK))
        reader.feed_eof()
        await link._pipe(reader, receiver, link.down, None, sender, 1, 1)  # type: ignore[arg-type]

    loop = asyncio.new_event_loop()
    loop.time = clock.time  # type: ignore[method-assign]
    monkeypatch.setattr(asyncio, "sleep", sleep)
    try:
        loop.run_until_complete(run())
    finally:
        monkeypatch.undo()
        loop.close()
    assert receiver.got == [bytes(CHUNK)] * 3 and receiver.eof
    assert link.carried == [0, 3 * CHUNK]
    return [(round(read, 6), round(sent, 6), n) for _, _, read, sent, n, _ in log]


def test_catch_up_counts_the_link_from_when_a_chunk_was_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    due, slot = RTT_MS / 2000, 0.5
    first = due + slot  # the first chunk: due, then its time on the link
    # the proxy runs LATE seconds late after it: the next two were due long before
    assert carry(False, monkeypatch) == [
        (0.0, first, CHUNK),
        (0.0, first + LATE + slot, CHUNK),  # the link's time counted from then
        (0.0, first + LATE + 2 * slot, CHUNK),
    ]
    assert carry(True, monkeypatch) == [
        (0.0, first, CHUNK),
        (0.0, first + LATE, CHUNK),  # it would have been carried by then: at once
        (0.0, first + 2 * slot, CHUNK),  # and this one behind it, where the link is free
    ]
