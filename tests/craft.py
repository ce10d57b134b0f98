"""Helpers for fault and security tests: opening a repository through the Python API, locating
and damaging objects, crafting (malicious) snapshots, and listings to prove nothing changed."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import blake3
import msgpack

from cairn.crypto import aead
from cairn.crypto.kdf import KdfParams
from cairn.model.node import DIR, FILE, SYMLINK, Node, encode_tree
from cairn.model.snapshot import Snapshot
from cairn.ops.snapshots import find_node, load_snapshots, walk
from cairn.repo import layout
from cairn.repo.repository import Repository
from cairn.storage.local import LocalStorage

PASSWORD = b"correct horse battery staple"  # the one tests/conftest.py puts in CAIRN_PASSWORD
FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)


# ---------------------------------------------------------------------- repositories
def create_repo(path: Path, pack_size: int = 1 << 20) -> Path:
    """A new repository with cheap KDF parameters (the CLI then opens it quickly)."""
    path.mkdir(parents=True, exist_ok=True)
    Repository.create(LocalStorage(path), PASSWORD, pack_size=pack_size, kdf=FAST_KDF)
    return path


def open_repo(path: Path, load_index: bool = True) -> Repository:
    repo = Repository.open(LocalStorage(path), PASSWORD)
    if load_index:
        repo.load_index()
    return repo


def only_snapshot(repo: Repository) -> Snapshot:
    snaps = load_snapshots(repo)
    assert len(snaps) == 1, [s.id for s in snaps]
    return snaps[0]


def files_below(repo: Repository, snap: Snapshot, path: str | os.PathLike[str]) -> dict[str, Node]:
    """relative path -> node, for every entry below ``path`` in the snapshot."""
    top = find_node(repo, snap, os.fspath(path))
    assert top.type == DIR and top.subtree is not None
    return {os.fsdecode(p.lstrip(b"/")): n for p, n in walk(repo, top.subtree)}


@dataclass(frozen=True)
class BlobPlace:
    pack_name: str  # data/xx/<pack id>
    pack_id: str
    offset: int
    length: int


def locate(repo: Repository, blob_id: bytes) -> BlobPlace:
    entry = repo.index.get(blob_id)
    assert entry is not None, blob_id.hex()
    pack_id = entry.pack.id.hex()
    return BlobPlace(layout.pack_name(pack_id), pack_id, entry.offset, entry.length)


def blobs_in_pack(repo: Repository, pack_id: str) -> dict[bytes, BlobPlace]:
    out = {}
    for blob_id in repo.index.blob_ids():
        place = locate(repo, blob_id)
        if place.pack_id == pack_id:
            out[blob_id] = place
    return out


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        assert len(b) == 1, f"{path} has no byte at {offset}"
        f.seek(offset)
        f.write(bytes([b[0] ^ (1 << bit)]))


# ---------------------------------------------------------------------- listings
def listing(root: Path, exclude: Iterable[Path] = ()) -> dict[str, tuple]:  # type: ignore[type-arg]
    """Every entry below (and including) ``root``, by relative path: type, mode, owner, size,
    link count, inode, mtime, ctime and a hash of the content or link target.
    Entries at or below any ``exclude`` path are left out (the excluded path itself is kept)."""
    excluded = [os.fspath(e) for e in exclude]
    out: dict[str, tuple] = {}  # type: ignore[type-arg]

    def entry(p: str) -> tuple:  # type: ignore[type-arg]
        st = os.lstat(p)
        digest = None
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            digest = os.readlink(p)
        return (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_size if not stat.S_ISDIR(st.st_mode) else None,
            st.st_nlink,
            st.st_ino,
            st.st_mtime_ns,
            st.st_ctime_ns,
            digest,
        )

    def visit(p: str, rel: str) -> None:
        out[rel] = entry(p)
        if p in excluded:
            out[rel] = out[rel][:1]  # the target itself: only that it is a directory
            return
        if stat.S_ISDIR(os.lstat(p).st_mode):
            for name in sorted(os.listdir(p)):
                visit(os.path.join(p, name), os.path.join(rel, name))

    visit(os.fspath(root), ".")
    return out


def repo_listing(repo: Path) -> dict[str, tuple[int, int, int]]:
    """relative path -> (type, size, mtime_ns) of everything in a repository directory."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, repo)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return out


def regular_files(root: Path) -> dict[str, bytes]:
    """relative path -> content of every regular file below ``root``."""
    out = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if stat.S_ISREG(os.lstat(p).st_mode):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = f.read()
    return out


# ---------------------------------------------------------------------- crafting snapshots
@dataclass
class Crafter:
    """Writes arbitrary (also malformed) trees and snapshots with the repository's own key,
    the way an attacker who holds the password, or controls the machine that backs up, could."""

    repo: Repository
    now: int = field(default_factory=lambda: 1_700_000_000 * 10**9)

    def __post_init__(self) -> None:
        self.writer = self.repo.writer().__enter__()  # left by close()

    def flush(self) -> None:
        """Stores what was written so far, with its index."""
        self.writer.flush()

    def file(self, name: bytes, data: bytes, mode: int = 0o644, **kw: object) -> Node:
        content = [self.writer.save_blob(layout.DATA_BLOB, data).id] if data else []
        return Node(
            name=name,
            type=FILE,
            mode=mode,
            size=len(data),
            content=content,
            mtime=self.now,
            atime=self.now,
            **kw,  # type: ignore[arg-type]
        )

    def symlink(self, name: bytes, target: bytes) -> Node:
        return Node(name=name, type=SYMLINK, mode=0o777, target=target, mtime=self.now)

    def dir(self, name: bytes, children: list[Node], mode: int = 0o755) -> Node:
        return Node(
            name=name,
            type=DIR,
            mode=mode,
            subtree=self.tree(children),
            mtime=self.now,
            atime=self.now,
        )

    def tree(self, nodes: list[Node]) -> bytes:
        # encode_tree sorts stably by name: nodes with the same name keep the given order.
        return self.writer.save_blob(layout.TREE_BLOB, encode_tree(nodes)).id

    def snapshot(self, nodes: list[Node]) -> str:
        tree = self.tree(nodes)
        self.writer.flush()
        snap = Snapshot(
            time=datetime.now(UTC),
            host="mallory",
            user="mallory",
            paths=["/crafted"],
            tree=tree,
        )
        return self.repo.save_snapshot(snap.encode())

    def raw_blob(self, blob_type: int, payload: bytes, raw_length: int) -> bytes:
        """A blob whose framed payload (mode byte and data) and indexed raw length are given as
        they are, unchecked; returns its (random) id."""
        blob_id = os.urandom(32)
        self.writer.copy_blob(blob_type, blob_id, payload, raw_length)
        return blob_id

    def raw_tree(self, nodes: list[object], version: object = 1) -> bytes:
        """A tree blob of arbitrary node values (maps of any keys and values, or not maps)."""
        data = msgpack.packb({"version": version, "nodes": nodes}, use_bin_type=True)
        return self.writer.save_blob(layout.TREE_BLOB, data).id

    def raw_dir(self, name: bytes, nodes: list[object]) -> Node:
        return Node(name=name, type=DIR, mode=0o755, subtree=self.raw_tree(nodes), mtime=self.now)

    def raw_object(self, prefix: str, payload: bytes) -> str:
        """A standalone object (``layout.SNAPSHOTS``, ``layout.INDEX``, ...) sealed around a
        framed payload given as it is; returns its name."""
        kind = {layout.INDEX: b"index", layout.SNAPSHOTS: b"snapshot", layout.LOCKS: b"lock"}
        sealed = aead.seal_object(self.repo.key.encryption, payload, kind[prefix])
        name = prefix + blake3.blake3(sealed).hexdigest()
        self.repo.storage.write(name, sealed)
        return name

    def snapshot_of_tree(self, tree: bytes, **fields: object) -> str:
        self.writer.flush()
        snap = Snapshot(
            time=datetime.now(UTC), host="mallory", user="mallory", paths=["/crafted"], tree=tree
        )
        for k, v in fields.items():
            setattr(snap, k, v)
        return self.repo.save_snapshot(snap.encode())

    def close(self) -> None:
        self.writer.flush()
        self.writer.__exit__(None, None, None)


def zstd_bomb(size: int, declare: int | None = None) -> bytes:
    """A framed payload (mode byte 1, then one zstd frame) that decompresses to ``size`` zero
    bytes in run-length blocks of 128 KiB, 4 bytes each (4 GiB in 128 KiB); its header declares
    ``declare`` as the content size, or none."""
    block = 128 << 10
    if declare is None:
        header = b"\x28\xb5\x2f\xfd" + bytes([0x00, 0x38])  # no size; window 128 KiB
    else:
        header = b"\x28\xb5\x2f\xfd" + bytes([0xC0, 0x38]) + struct.pack("<Q", declare)
    full, rest = divmod(size, block)
    sizes = [block] * full + ([rest] if rest or not full else [])
    blocks = [
        struct.pack("<I", (n << 3) | (1 << 1) | (i == len(sizes) - 1))[:3] + b"\0"
        for i, n in enumerate(sizes)
    ]
    return b"\x01" + header + b"".join(blocks)
