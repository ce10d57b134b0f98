"""Finding snapshots and walking their trees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cairn.core.errors import IntegrityError, NotFoundError, UsageError
from cairn.core.overlap import Overlap
from cairn.model.node import DIR, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.treewalk import TreeProblem, load_tree, walk
from cairn.repo import layout
from cairn.repo.repository import Repository

__all__ = ["load_tree", "walk"]  # where the other commands have always found them


@dataclass
class SnapshotFilter:
    hosts: Sequence[str] = ()
    tags: Sequence[str] = ()  # each entry "a,b": all of a and b; entries are alternatives
    paths: Sequence[str] = ()  # snapshots that contain all of these paths

    def matches(self, snap: Snapshot) -> bool:
        if self.hosts and snap.host not in self.hosts:
            return False
        if self.tags:
            wanted = [set(t.split(",")) - {""} for t in self.tags]
            if not any(w <= set(snap.tags) for w in wanted):
                return False
        return not self.paths or set(self.paths) <= set(snap.paths)


@dataclass
class SnapshotListing:
    """The snapshots that could be read, and the damaged ones (id -> what is wrong)."""

    snapshots: list[Snapshot] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)
    # the objects' bytes read, as listed (all snapshots only: with ``ids``, not known)
    bytes_read: int = 0


def read_snapshots(
    repo: Repository, ids: Iterable[str] | None = None, listed: dict[str, int] | None = None
) -> SnapshotListing:
    """Every snapshot (or those of ``ids``), oldest first. One that vanishes between the listing
    and the read (removed by a forget on another host) is left out; one that fails
    authentication or does not parse is left out and named in ``damaged``. Other errors (the
    store unreachable) are raised. On an object store they are read at once
    (``request_threads``). ``listed``: snapshots/ as a listing already made saw it (name ->
    size), instead of listing."""
    out = SnapshotListing()
    with Overlap(repo.request_threads) as overlap:
        if listed is not None:
            sizes = {layout.id_of(n): size for n, size in listed.items()}
        else:
            sizes = repo.snapshot_sizes() if ids is None else {}
        names = list(sizes) if ids is None else ids
        for hex_id, data in overlap.map(repo.load_snapshot, names):
            try:
                out.snapshots.append(decode_snapshot(hex_id, data.result()))
            except NotFoundError:
                continue  # vanished: nothing was downloaded
            except IntegrityError as e:
                out.damaged[hex_id] = e.detail
            out.bytes_read += sizes.get(hex_id, 0)
    out.snapshots.sort(key=lambda s: (s.time, s.id))
    return out


def load_snapshots(repo: Repository, flt: SnapshotFilter | None = None) -> list[Snapshot]:
    """The readable snapshots that pass ``flt``, oldest first; each damaged snapshot object is
    skipped with a notice (``cairn forget ID`` or ``cairn repair snapshots`` removes it)."""
    return readable(repo, read_snapshots(repo), flt)


def readable(
    repo: Repository, listing: SnapshotListing, flt: SnapshotFilter | None = None
) -> list[Snapshot]:
    """The snapshots of ``listing`` that pass ``flt``; each damaged one is skipped with a
    notice (``load_snapshots``, for a listing read beside another step)."""
    for hex_id, detail in listing.damaged.items():
        repo.notice(layout.snapshot_name(hex_id), f"{detail}; skipped ({DAMAGED_HINT})")
    return [s for s in listing.snapshots if flt is None or flt.matches(s)]


DAMAGED_HINT = "`cairn forget ID` or `cairn repair snapshots` removes it"


def resolve_id(repo: Repository, ref: str) -> str:
    """The full id of the one snapshot whose id starts with ``ref`` (not ``latest``)."""
    if not ref or any(c not in "0123456789abcdef" for c in ref.lower()):
        raise UsageError(f"{ref!r} is not a snapshot id (use a hex id, a prefix of one, or latest)")
    return layout.by_prefix(repo.snapshot_ids(), ref, "snapshot")


def resolve(repo: Repository, ref: str, flt: SnapshotFilter | None = None) -> Snapshot:
    """``latest`` (the newest readable snapshot after filtering) or a unique prefix of a
    snapshot id."""
    if ref == "latest":
        snaps = load_snapshots(repo, flt)
        if not snaps:
            raise NotFoundError("no snapshot matches" if flt else "the repository has no snapshots")
        return snaps[-1]
    hex_id = resolve_id(repo, ref)
    return decode_snapshot(hex_id, repo.load_snapshot(hex_id))


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
