"""A command's requests to the store and the bytes it moved, in one line."""

from __future__ import annotations

from collections.abc import Mapping

from cairn.core.units import format_bytes


def store_line(r: Mapping[str, int], label: str = "store") -> str:
    """'store: 3 PUT, 5 GET, 0 HEAD, 2 LIST, 1 DELETE; 12.0 MiB up, 3.1 KiB down'."""
    return (
        f"{label}: {r.get('put', 0)} PUT, {r.get('get', 0)} GET, {r.get('head', 0)} HEAD, "
        f"{r.get('list', 0)} LIST, {r.get('delete', 0)} DELETE; "
        f"{format_bytes(r.get('bytes_up', 0))} up, {format_bytes(r.get('bytes_down', 0))} down"
    )
