"""The group of paths a file with several has: its device and inode number (model/hardlinks.py
uses it; the backup's scanner too, in a process of its own, so this module imports nothing)."""

from __future__ import annotations

LinkKey = tuple[int, int]  # (device, inode)


def link_key(dev: int, inode: int, links: int) -> LinkKey | None:
    """The group of a file with this device, inode and link count; None for a file with one
    path (or an unknown inode)."""
    return (dev, inode) if links > 1 and inode else None
