"""Tree entries as the commands show them: a JSON object, or an `ls -l` line."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from typing import Any

from cairn.ui.escape import printable
from cairn.ui.output import show_path

_TYPE_CHAR = {
    "dir": "d",
    "symlink": "l",
    "fifo": "p",
    "chardev": "c",
    "blockdev": "b",
    "socket": "s",
}


def node_json(path: bytes, node: Any) -> dict[str, object]:
    """A tree entry (a Node) at ``path``, for JSON output: names exact, ids in hex."""
    doc: dict[str, object] = {
        "path": show_path(path),
        "name": show_path(node.name),
        "type": node.type,
        "mode": node.mode,
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "size": node.size,
        "mtime": node.mtime,
        "atime": node.atime,
        "ctime": node.ctime,
    }
    if node.target is not None:
        doc["target"] = show_path(node.target)
    if node.content:
        doc["content"] = [c.hex() for c in node.content]
    if node.subtree is not None:
        doc["subtree"] = node.subtree.hex()
    return doc


def long_line(path: bytes, node: Any) -> str:
    """An `ls -l` line: type and mode, owner, size, local time, path, link target."""
    perms = stat.filemode(node.mode)[1:]
    kind = _TYPE_CHAR.get(node.type, "-")
    when = datetime.fromtimestamp(node.mtime / 1e9, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    owner = printable(f"{node.user or node.uid}/{node.group or node.gid}")
    line = f"{kind}{perms} {owner:>17} {node.size:>12} {when} {printable(path)}"
    if node.target is not None:
        line += f" -> {printable(node.target)}"
    return line
