"""How the templates show numbers, times, modes and names."""

from __future__ import annotations

import os
import stat
from datetime import datetime

import jinja2

from cairn.core.units import format_bytes, format_duration
from cairn.ui.money import money


def when(value: datetime | float | int | None) -> str:
    """A time, local, to the second; a number: seconds since the epoch."""
    if value is None:
        return "–"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def nstime(ns: int) -> str:
    return when(ns / 1e9) if ns else "–"


def mode(node_type: str, bits: int) -> str:
    kind = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO}.get(
        node_type, stat.S_IFREG
    )
    return stat.filemode(kind | (bits & 0o7777))


def name(raw: bytes | str) -> str:
    """A name as text; bytes that are not UTF-8 shown as escapes."""
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", "backslashreplace")


def fsname(raw: bytes) -> str:
    """A name as the URL of a path carries it (undecodable bytes kept, as the file system)."""
    return os.fsdecode(raw)


def install(env: jinja2.Environment) -> None:
    env.filters.update(
        bytes=lambda n: "–" if n is None else format_bytes(n),
        duration=lambda s: "–" if s is None else format_duration(s),
        when=when,
        nstime=nstime,
        mode=mode,
        name=name,
        fsname=fsname,
        short=lambda i: i[:8],
        money=money,
    )
