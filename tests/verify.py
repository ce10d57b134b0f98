"""An independent consistency check of a repository, for tests: every snapshot's trees and
file blobs are in the index, every indexed pack exists with the right size and parses, and every
blob decrypts to its id."""

from __future__ import annotations

import os

from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.model.node import DIR, FILE, SYMLINK
from cairn.ops.snapshots import SnapshotFilter, find_node, load_snapshots, resolve, walk
from cairn.repo import layout
from cairn.repo.pack import parse_pack
from cairn.repo.repository import Repository
from tests.conftest import PASSWORD
from tests.treecmp import atimes, describe, diff


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


def open_url(url: str | os.PathLike[str]) -> Repository:
    """The repository at a URL (or local path), opened with the tests' password."""
    options = StoreOptions()
    storage, _ = wrap_backend(backend_for(os.fspath(url), options), options)
    return Repository.open(storage, PASSWORD.encode())


def recorded_atimes(
    url: str | os.PathLike[str], path: str | os.PathLike[str], ref: str = "latest"
) -> dict[bytes, int]:
    """relative path -> the atime the snapshot recorded, for every entry below ``path`` (a
    directory in the snapshot ``ref``) but symlinks."""
    repo = open_url(url)
    repo.load_index()
    top = find_node(repo, resolve(repo, ref, SnapshotFilter()), os.fspath(path))
    assert top.type == DIR and top.subtree is not None
    return {p.lstrip(b"/"): n.atime for p, n in walk(repo, top.subtree) if n.type != SYMLINK}


def restored_diff(
    source: str | os.PathLike[str],
    restored: str | os.PathLike[str],
    url: str | os.PathLike[str],
    ref: str = "latest",
) -> list[str]:
    """Differences between a restore of ``latest:SOURCE`` (or ``REF:SOURCE``) and what cairn
    promises: everything but access times as the source is now (reading it changes none of
    that), and access times as the snapshot recorded them (the source's may have moved since:
    see tests.treecmp)."""
    problems = diff(describe(source, atime=False), describe(restored, atime=False))
    got = atimes(describe(restored))
    want = recorded_atimes(url, source, ref)
    for path in sorted(got.keys() | want.keys()):
        if got.get(path) != want.get(path):
            problems.append(f"{path!r}: atime {got.get(path)}, recorded {want.get(path)}")
    return problems
