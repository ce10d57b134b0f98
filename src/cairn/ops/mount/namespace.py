"""The directories a mount shows above the snapshots' own trees:

    snapshots/<time>/            every snapshot, by its time (local, to the second)
    ids/<short id>/              by the first 8 hex digits of its id
    hosts/<host>/<time>/         by the host it was taken on
    tags/<tag>/<time>/           by each of its tags

with a ``latest`` symbolic link in each listing of times (and in ``ids/``) to the newest
snapshot. Two snapshots of the same second are told apart by their short id after the time.
The listing is read again when it is looked at and older than ``refresh`` seconds, so
snapshots taken after the mount appear without remounting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cairn.model.snapshot import Snapshot

Dir = dict[bytes, "Entry"]


@dataclass(frozen=True)
class Link:
    target: bytes


Entry = Dir | Link | Snapshot


def layout(snaps: list[Snapshot]) -> Dir:
    """The directories above the snapshots, for ``snaps`` oldest first."""
    by_time: Dir = {}
    ids: Dir = {}
    hosts: dict[bytes, Dir] = {}
    tags: dict[bytes, Dir] = {}
    names = _time_names(snaps)
    for snap in snaps:
        name = names[snap.id]
        by_time[name] = snap
        ids[snap.id[:8].encode()] = snap
        hosts.setdefault(snap.host.encode("utf-8", "surrogateescape"), {})[name] = snap
        for tag in snap.tags:
            tags.setdefault(tag.encode("utf-8", "surrogateescape"), {})[name] = snap
    if snaps:
        newest = names[snaps[-1].id]
        by_time[b"latest"] = Link(newest)
        ids[b"latest"] = Link(snaps[-1].id[:8].encode())
    for group in (*hosts.values(), *tags.values()):
        group[b"latest"] = Link(_newest(group))
    return {
        b"snapshots": by_time,
        b"ids": ids,
        b"hosts": dict(hosts),
        b"tags": dict(tags),
    }


def _newest(group: Dir) -> bytes:
    snaps = [(s.time, s.id, name) for name, s in group.items() if isinstance(s, Snapshot)]
    return max(snaps)[2]


def _time_names(snaps: list[Snapshot]) -> dict[str, bytes]:
    names: dict[str, bytes] = {}
    seen: dict[bytes, int] = {}
    for snap in snaps:
        base = snap.time.astimezone().strftime("%Y-%m-%dT%H:%M:%S").encode()
        seen[base] = seen.get(base, 0) + 1
    for snap in snaps:
        base = snap.time.astimezone().strftime("%Y-%m-%dT%H:%M:%S").encode()
        names[snap.id] = base if seen[base] == 1 else base + b"-" + snap.id[:8].encode()
    return names


class Namespace:
    """The layout, read again when older than ``refresh`` seconds (``load``: the snapshots,
    oldest first)."""

    def __init__(
        self,
        load: Callable[[], list[Snapshot]],
        refresh: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._root: Dir = {}
        self._loaded_at: float | None = None

    def root(self) -> Dir:
        with self._lock:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at >= self.refresh:
                self._root = layout(self._load())
                self._loaded_at = now
            return self._root
