"""Hardlink groups: the paths of one file, found one after another as a tree is walked.

Paths of one file share a device and an inode number, and have a link count over one. The first
path of a group met records a value (where it was restored, its tar name, its backup job); each
later path gets that value back, and is made a link to the first instead of a copy of it.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from cairn.model.linkkey import LinkKey, link_key
from cairn.model.node import FILE, Node

T = TypeVar("T")


def node_link_key(node: Node) -> LinkKey | None:
    """``link_key`` of a snapshot entry: only regular files are grouped."""
    if node.type != FILE or node.links < 2:
        return None
    return link_key(node.dev, node.inode, node.links)


class HardlinkIndex(Generic[T]):
    """The first path's value of every group met so far."""

    def __init__(self) -> None:
        self._first: dict[LinkKey, T] = {}

    def __len__(self) -> int:
        return len(self._first)

    def get(self, key: LinkKey) -> T | None:
        return self._first.get(key)

    def add(self, key: LinkKey, value: T) -> None:
        self._first[key] = value

    def first(self, node: Node, value: T) -> T | None:
        """For a later path of a group met before: the value its first path recorded. Otherwise
        None, and ``value`` is recorded if ``node`` starts a group."""
        key = node_link_key(node)
        if key is None:
            return None
        found = self._first.get(key)
        if found is None:
            self._first[key] = value
        return found
