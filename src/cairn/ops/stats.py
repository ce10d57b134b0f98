"""Numbers about a repository and about snapshots."""

from __future__ import annotations

from cairn.model.node import DIR, FILE
from cairn.model.snapshot import Snapshot
from cairn.ops.snapshots import walk
from cairn.repo.layout import DATA_BLOB, TREE_BLOB
from cairn.repo.repository import Repository


def repository_stats(repo: Repository, snapshots: int) -> dict[str, float | int]:
    by_type = repo.index.total_blobs_by_type()
    data = by_type.get(DATA_BLOB, (0, 0, 0))
    tree = by_type.get(TREE_BLOB, (0, 0, 0))
    objects = list(repo.storage.list(""))
    raw = data[2] + tree[2]
    stored = data[1] + tree[1]
    return {
        "snapshots": snapshots,
        "packs": len(repo.index.packs),
        "data_blobs": data[0],
        "data_stored": data[1],
        "data_raw": data[2],
        "tree_blobs": tree[0],
        "tree_stored": tree[1],
        "tree_raw": tree[2],
        "objects": len(objects),
        "stored_size": sum(size for _, size in objects),
        "compression_ratio": (raw / stored) if stored else 1.0,
    }


def snapshot_stats(repo: Repository, snap: Snapshot) -> dict[str, int | str]:
    files = dirs = size = 0
    unique: set[bytes] = set()
    unique_raw = 0
    for _path, node in walk(repo, snap.tree):
        if node.type == DIR:
            dirs += 1
        elif node.type == FILE:
            files += 1
            size += node.size
            for blob_id in node.content:
                if blob_id not in unique:
                    unique.add(blob_id)
                    entry = repo.index.get(blob_id)
                    unique_raw += entry.raw_length if entry else 0
    return {
        "snapshot": snap.id,
        "files": files,
        "dirs": dirs,
        "restore_size": size,
        "unique_blobs": len(unique),
        "unique_raw": unique_raw,
    }
