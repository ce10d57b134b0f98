"""An independent consistency check of a repository, for tests: every snapshot's trees and
file blobs are in the index, every indexed pack exists with the right size and parses, and every
blob decrypts to its id."""

from __future__ import annotations

from cairn.model.node import DIR, FILE
from cairn.ops.snapshots import load_snapshots, walk
from cairn.repo import layout
from cairn.repo.pack import parse_pack
from cairn.repo.repository import Repository


def verify_repository(repo: Repository, read_data: bool = True) -> dict[str, int]:
    repo.load_index()
    packs = dict(repo.storage.list(layout.DATA))
    checked = 0
    for info in repo.index.packs:
        name = layout.pack_name(info.id.hex())
        assert name in packs, f"indexed pack {name} is missing"
        if read_data:
            data = repo.storage.read(name)
            salt, blob_type, blobs = parse_pack(repo.key.encryption, data)
            assert salt == info.salt and blob_type == info.blob_type, name
            for b in blobs:
                assert repo.load_blob(b.id) is not None
                checked += 1
    snaps = load_snapshots(repo)
    files = 0
    for snap in snaps:
        assert repo.has_blob(snap.tree), f"snapshot {snap.id}: root tree missing"
        for path, node in walk(repo, snap.tree):
            if node.type == DIR:
                assert node.subtree is not None and repo.has_blob(node.subtree), path
            elif node.type == FILE:
                files += 1
                for blob_id in node.content:
                    assert repo.has_blob(blob_id), f"{path!r}: blob {blob_id.hex()} missing"
    return {"snapshots": len(snaps), "blobs_read": checked, "files": files}
