"""Builds a snapshot's trees from streams: each stream becomes one regular file.

Streams are read one after the other, each straight into the chunker, so memory stays flat
whatever their size. The files are owned by the user running the backup, with mode 0600 (a
database dump is as private as the database), and carry the time the backup started. A stream
whose producer fails raises SourceFailed, and no tree is written for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cairn.core import clock
from cairn.core.errors import CairnError, UsageError
from cairn.model.node import DIR, FILE, Node
from cairn.model.snapshot import Summary
from cairn.ops.backup.archiver import save_tree
from cairn.ops.backup.file_saver import FileSaver
from cairn.ops.fsmeta import group_name, user_name
from cairn.ops.progress import Progress
from cairn.ops.sources.stream import StreamItem
from cairn.ops.treewalk import TreeProblem, load_tree
from cairn.repo.writer import Writer

FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass
class _Dir:
    entries: dict[bytes, _Dir | StreamItem] = field(default_factory=dict)


class StreamArchiver:
    def __init__(
        self, writer: Writer, progress: Progress, parent_tree: bytes | None = None
    ) -> None:
        self.writer = writer
        self.repo = writer.repo  # the parent snapshot's tree is read from it
        self.progress = progress
        self.parent_tree = parent_tree
        self.summary = Summary()
        self._saver = FileSaver(writer, progress.bytes_done)
        self._time = int(clock.now().timestamp() * 1_000_000_000)

    def run(self, items: list[StreamItem]) -> bytes:
        """Reads every stream into the repository; returns the id of the root tree."""
        return self._save_dir(layout(items), (), self.parent_tree)

    def _save_dir(self, d: _Dir, parts: tuple[bytes, ...], parent: bytes | None) -> bytes:
        old = self._parent_nodes(parent)
        nodes = []
        for name, entry in sorted(d.entries.items()):
            before = old.get(name)
            if isinstance(entry, _Dir):
                node = self._node(name, DIR, DIR_MODE)
                same = before is not None and before.type == DIR
                node.subtree = self._save_dir(
                    entry, (*parts, name), before.subtree if same and before else None
                )
            else:
                node = self._save_stream(entry, name, before)
            nodes.append(node)
        return save_tree(self.writer, nodes, self.summary)

    def _save_stream(self, item: StreamItem, name: bytes, before: Node | None) -> Node:
        path = os.fsencode(item.path)
        with item.source.open(lambda line: self.progress.warning(path, line)) as stream:
            result = self._saver.save_stream(stream)
        node = self._node(name, FILE, FILE_MODE)
        node.content, node.size = result.content, result.size
        s = self.summary
        s.bytes_read += result.size
        s.bytes_total += result.size
        s.data_blobs_added += result.blobs_added
        s.bytes_added += result.bytes_added
        s.bytes_stored += result.bytes_stored
        if before is None or before.type != FILE:
            s.files_new += 1
        elif before.content == node.content:
            s.files_unchanged += 1
        else:
            s.files_changed += 1
        self.progress.item_done(path, result.size)
        return node

    def _node(self, name: bytes, kind: str, mode: int) -> Node:
        uid, gid = os.getuid(), os.getgid()
        t = self._time
        return Node(
            name=name,
            type=kind,
            mode=mode,
            uid=uid,
            gid=gid,
            user=user_name(uid),
            group=group_name(gid),
            mtime=t,
            atime=t,
            ctime=t,
        )

    def _parent_nodes(self, tree: bytes | None) -> dict[bytes, Node]:
        """The previous snapshot's entries, to tell new, changed and unchanged streams apart."""
        if tree is None or not self.writer.has_blob(tree):
            return {}
        try:
            # entries a damaged tree leaves out only count as new
            return {n.name: n for n in load_tree(self.repo, tree, on_problem=_ignore)}
        except CairnError:
            return {}  # a damaged parent only costs the new/changed distinction


def _ignore(problem: TreeProblem) -> None:
    pass


def layout(items: list[StreamItem]) -> _Dir:
    """The directory structure of the streams' paths; two streams may not share a path."""
    root = _Dir()
    for item in items:
        parts = [os.fsencode(p) for p in item.path.split("/") if p]
        if not parts:
            raise UsageError(f"invalid stream path {item.path!r}")
        d = root
        for part in parts[:-1]:
            sub = d.entries.setdefault(part, _Dir())
            if not isinstance(sub, _Dir):
                raise UsageError(f"stream path {item.path} is inside another stream's file")
            d = sub
        if parts[-1] in d.entries:
            raise UsageError(f"two streams would be stored as {item.path}")
        d.entries[parts[-1]] = item
    return root
