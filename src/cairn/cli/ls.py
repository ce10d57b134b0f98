"""cairn ls: list the contents of a snapshot."""

from __future__ import annotations

import stat
from datetime import UTC, datetime

import click

from cairn.app.context import RepoSpec, open_session
from cairn.cli.common import filter_options, repo_options
from cairn.core.errors import EXIT_FAILED
from cairn.model.node import DIR, Node
from cairn.ops.snapshots import SnapshotFilter, find_node, resolve, split_path
from cairn.ops.treewalk import TreeProblem, walk
from cairn.ui.escape import printable
from cairn.ui.output import Output, show_path

_TYPE_CHAR = {
    "dir": "d",
    "symlink": "l",
    "fifo": "p",
    "chardev": "c",
    "blockdev": "b",
    "socket": "s",
}


def node_json(path: bytes, node: Node) -> dict[str, object]:
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


def long_line(path: bytes, node: Node) -> str:
    perms = stat.filemode(node.mode)[1:]
    kind = _TYPE_CHAR.get(node.type, "-")
    when = datetime.fromtimestamp(node.mtime / 1e9, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    owner = f"{node.user or node.uid}/{node.group or node.gid}"
    owner = printable(owner)
    line = f"{kind}{perms} {owner:>17} {node.size:>12} {when} {printable(path)}"
    if node.target is not None:
        line += f" -> {printable(node.target)}"
    return line


@click.command("ls")
@repo_options
@filter_options
@click.argument("snapshot")
@click.argument("path", required=False, default="/")
@click.option("-l", "--long", "long_format", is_flag=True, help="Show mode, owner, size and time.")
def command(
    spec: RepoSpec, out: Output, flt: SnapshotFilter, snapshot: str, path: str, long_format: bool
) -> int:
    """List the files in SNAPSHOT (an id, a prefix of one, or latest), below PATH."""
    session = open_session(spec, load_index=False)
    snap = resolve(session.repo, snapshot, flt)
    session.repo.load_index()  # after the snapshot: a newer one may use newer index objects
    top = find_node(session.repo, snap, path)
    parts = split_path(path)
    base = b"/" + b"/".join(parts) if parts else b""
    problems = 0

    def report(problem: TreeProblem) -> None:
        # a damaged or crafted tree: what can be read is still listed
        nonlocal problems
        problems += 1
        out.warning(f"{show_path(problem.path or b'/')}: {problem.describe()}")

    if top.type == DIR and top.subtree is not None:
        entries = walk(session.repo, top.subtree, base, report, depth=len(parts) + 1)
    else:
        entries = iter([(base, top)])
    for p, node in entries:
        if out.json_mode:
            out.json(node_json(p, node))
        elif long_format:
            out.raw_line(long_line(p, node))
        else:
            out.raw_line(printable(p))
    if problems:
        out.error(f"{problems} problems in the snapshot's trees: see `cairn check`")
        return EXIT_FAILED
    return 0
