"""Finding snapshots and walking their trees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn.core.errors import IntegrityError, NotFoundError, UsageError
from cairn.model.node import DIR, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.treewalk import TreeProblem, load_tree, walk
from cairn.repo.repository import Repository

__all__ = ["load_tree", "walk"]  # where the other commands have always found them


@dataclass
class SnapshotFilter:
    hosts: Sequence[str] = ()
    tags: Sequence[str] = ()  # each entry "a,b": all of a and b; entries are alternatives
    paths: Sequence[str] = ()  # snapshots that contain all of these paths
    extra: dict[str, str] = field(default_factory=dict)

    def matches(self, snap: Snapshot) -> bool:
        if self.hosts and snap.host not in self.hosts:
            return False
        if self.tags:
            wanted = [set(t.split(",")) - {""} for t in self.tags]
            if not any(w <= set(snap.tags) for w in wanted):
                return False
        return not self.paths or set(self.paths) <= set(snap.paths)


def load_snapshots(repo: Repository, flt: SnapshotFilter | None = None) -> list[Snapshot]:
    snaps = []
    for hex_id, data in repo.iter_snapshots():
        snap = decode_snapshot(hex_id, data)
        if flt is None or flt.matches(snap):
            snaps.append(snap)
    snaps.sort(key=lambda s: (s.time, s.id))
    return snaps


def resolve(repo: Repository, ref: str, flt: SnapshotFilter | None = None) -> Snapshot:
    """``latest`` (after filtering) or a unique prefix of a snapshot id."""
    if ref == "latest":
        snaps = load_snapshots(repo, flt)
        if not snaps:
            raise NotFoundError("no snapshot matches" if flt else "the repository has no snapshots")
        return snaps[-1]
    if not ref or any(c not in "0123456789abcdef" for c in ref.lower()):
        raise UsageError(f"{ref!r} is not a snapshot id (use a hex id, a prefix of one, or latest)")
    ids = [i for i in repo.snapshot_ids() if i.startswith(ref.lower())]
    if not ids:
        raise NotFoundError(f"no snapshot with id {ref}")
    if len(ids) > 1:
        raise UsageError(f"snapshot id prefix {ref} is ambiguous ({len(ids)} snapshots match)")
    return decode_snapshot(ids[0], repo.load_snapshot(ids[0]))


def decode_snapshot(hex_id: str, data: bytes) -> Snapshot:
    try:
        return Snapshot.decode(hex_id, data)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IntegrityError(f"snapshots/{hex_id}", f"malformed snapshot: {e}") from None


def split_path(path: str | bytes) -> list[bytes]:
    raw = path if isinstance(path, bytes) else path.encode("utf-8", "surrogateescape")
    return [p for p in raw.split(b"/") if p and p != b"."]


def find_node(repo: Repository, snap: Snapshot, path: str | bytes) -> Node:
    """The node at ``path`` inside the snapshot ('' or '/': a directory node for the root).
    Entries left out of a tree (invalid, or repeating a name) are not found; what else is
    wrong with the trees on the way is for the walk below to report."""
    node = Node(name=b"", type=DIR, mode=0o755, subtree=snap.tree)
    for part in split_path(path):
        if node.type != DIR or node.subtree is None:
            raise NotFoundError(f"{path!s}: not a directory in snapshot {snap.id[:8]}")
        match = [n for n in load_tree(repo, node.subtree, on_problem=_ignore) if n.name == part]
        if not match:
            raise NotFoundError(f"{path!s}: no such path in snapshot {snap.id[:8]}")
        node = match[0]
    return node


def _ignore(problem: TreeProblem) -> None:
    pass
