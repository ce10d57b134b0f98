"""A reader of cairn repositories written from docs/format.md alone, importing nothing from
cairn: it opens a repository in a local directory with a password, lists the snapshots, loads
the index, verifies every blob and restores a snapshot. The tests run it against what cairn
writes, so a change to the bytes that the document does not describe fails them.

Section numbers in the comments are those of docs/format.md. The reader is strict where the
document lets a reader choose: any object that breaks a rule is an error (it does not skip a
damaged snapshot, as cairn does), so that nothing the document does not describe goes unseen.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import re
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import blake3
import msgpack
import zstandard
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CAIRNPK\x01"
DATA, TREE = 0, 1
MAX_PAYLOAD = {  # §5.3
    "config": 1 << 20,
    "index": 64 << 20,
    "snapshot": 16 << 20,
    DATA: 16 << 20,
    TREE: 256 << 20,
}
HEX64 = re.compile(r"[0-9a-f]{64}")
SNAPSHOT_KEYS = {  # §8: key -> allowed types (unknown keys are rejected, §1.2)
    "time": (str,),
    "host": (str,),
    "user": (str,),
    "paths": (list,),
    "tree": (bytes,),
    "tags": (list,),
    "parent": (str, type(None)),
    "uid": (int,),
    "gid": (int,),
    "excludes": (list,),
    "program": (str,),
    "summary": (dict,),
    "original": (str, type(None)),
    "version": (int,),
}
NODE_KEYS = {  # §7.2
    "name", "type", "mode", "uid", "gid", "user", "group", "mtime", "atime", "ctime", "size",
    "inode", "dev", "links", "content", "subtree", "target", "rdev", "xattrs",
}  # fmt: skip
NODE_TYPES = {"file", "dir", "symlink", "fifo", "chardev", "blockdev", "socket"}
HOLE = 4096  # blocks of zeros left as holes (§10.1: any granularity is allowed)


class FormatError(Exception):
    """The bytes break docs/format.md."""


def _check(cond: object, what: str) -> None:
    if not cond:
        raise FormatError(what)


def _hkdf(ke: bytes, salt: bytes, purpose: bytes) -> bytes:  # §3.3
    return HKDF(hashes.SHA256(), 32, salt, b"cairn v1 " + purpose).derive(ke)


def _nonce(n: int) -> bytes:
    return n.to_bytes(12, "big")


def unframe(plain: bytes, limit: int, exact: int | None = None) -> bytes:  # §5.3
    _check(plain, "empty plaintext")
    mode, rest = plain[0], plain[1:]
    if mode == 0:
        payload = rest
    elif mode == 1:
        size = zstandard.frame_content_size(rest)
        _check(size >= 0, "zstd frame without a content size")
        _check(size <= limit and (exact is None or size == exact), "zstd frame size")
        dobj = zstandard.ZstdDecompressor().decompressobj()
        payload = dobj.decompress(rest)
        _check(dobj.eof and not dobj.unused_data, "not exactly one zstd frame")
    else:
        raise FormatError(f"unknown payload mode {mode}")
    _check(len(payload) <= limit and (exact is None or len(payload) == exact), "payload size")
    return payload


@dataclass(frozen=True)
class Place:
    pack: bytes
    salt: bytes
    type: int
    offset: int
    length: int
    raw_length: int


class Reader:
    def __init__(self, root: str | os.PathLike[str], password: bytes):
        self.root = Path(root)
        self.ke, self.ki = self._master_keys(password)
        self.config = msgpack.unpackb(self.load_object("config", "config"), raw=False)
        _check(self.config.get("version") == 1, "config version")
        _check(re.fullmatch(r"[0-9a-f]{32}", self.config["id"]), "config id")
        self.index: dict[bytes, Place] = {}

    # --------------------------------------------------------------- objects
    def names(self, prefix: str) -> list[str]:
        """Object names under ``prefix``, ignoring anything that is not a valid name (§2)."""
        d = self.root / prefix
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if HEX64.fullmatch(p.name))

    def _master_keys(self, password: bytes) -> tuple[bytes, bytes]:  # §3.2, §5.1, §10.1 step 1
        files = []
        for name in self.names("keys"):
            raw = (self.root / "keys" / name).read_bytes()
            d = json.loads(raw)
            _check(d["version"] == 1 and d["kdf"]["algorithm"] == "argon2id", "key file")
            _check(set(d["kdf"]) == {"algorithm", "time_cost", "memory_cost", "parallelism"}, "kdf")
            files.append(d)
        files.sort(key=lambda d: d["kdf"]["memory_cost"] * d["kdf"]["time_cost"])
        for d in files:
            kdf, salt, wrapped = (
                d["kdf"],
                base64.b64decode(d["salt"]),
                base64.b64decode(d["wrapped"]),
            )
            _check(len(salt) == 16 and len(wrapped) == 92, "key file lengths")
            kek = hash_secret_raw(
                password, salt, time_cost=kdf["time_cost"], memory_cost=kdf["memory_cost"],
                parallelism=kdf["parallelism"], hash_len=32, type=Type.ID, version=0x13,
            )  # fmt: skip
            try:
                plain = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"cairn key v1")
            except Exception:
                continue
            _check(len(plain) == 64, "wrapped keys")
            return plain[:32], plain[32:]
        raise FormatError("no key file opens with this password")

    def load_object(self, name: str, kind: str) -> bytes:  # §5.2
        data = (self.root / name).read_bytes()
        if name != "config":
            _check(blake3.blake3(data).hexdigest() == name.rsplit("/", 1)[1], f"{name}: hash")
        _check(len(data) >= 49 and data[0] == 1, f"{name}: envelope")
        key = _hkdf(self.ke, data[1:33], b"object")
        plain = AESGCM(key).decrypt(_nonce(0), data[33:], data[:33] + kind.encode())
        return unframe(plain, MAX_PAYLOAD[kind])

    # ----------------------------------------------------------------- index
    def load_index(self) -> None:  # §5.6, §10.1 step 3
        for name in self.names("index"):
            d = msgpack.unpackb(self.load_object(f"index/{name}", "index"), raw=False)
            _check(d["version"] == 1, "index version")
            for pack in d["packs"]:
                _check(pack["type"] in (DATA, TREE), "pack type")
                _check(len(pack["id"]) == 32 and len(pack["salt"]) == 32, "pack id or salt")
                for blob_id, offset, length, raw_length in pack["blobs"]:
                    _check(len(blob_id) == 32 and 40 <= offset < 1 << 32, "index entry")
                    self.index.setdefault(
                        blob_id,
                        Place(pack["id"], pack["salt"], pack["type"], offset, length, raw_length),
                    )

    def pack_path(self, pack_id: bytes) -> Path:
        h = pack_id.hex()
        return self.root / "data" / h[:2] / h

    def load_blob(self, blob_id: bytes, blob_type: int) -> bytes:  # §10.1 step 5
        p = self.index[blob_id]
        _check(p.type == blob_type, "blob type")
        with open(self.pack_path(p.pack), "rb") as f:
            f.seek(p.offset)
            sealed = f.read(p.length)
        _check(len(sealed) == p.length, "truncated pack")
        key = _hkdf(self.ke, p.salt, b"pack")
        plain = AESGCM(key).decrypt(_nonce(p.offset), sealed, bytes([blob_type]) + blob_id)
        data = unframe(plain, MAX_PAYLOAD[blob_type], exact=p.raw_length)
        _check(blake3.blake3(data, key=self.ki).digest() == blob_id, "blob id")
        return data

    def verify_packs(self) -> int:
        """Reads every pack whole: its name, both magics, its header (§5.5, §10.3) against the
        index, and every blob in it. Returns the number of blobs verified."""
        by_pack: dict[bytes, list[tuple[bytes, Place]]] = {}
        for blob_id, p in self.index.items():
            by_pack.setdefault(p.pack, []).append((blob_id, p))
        count = 0
        for pack_id, blobs in by_pack.items():
            data = self.pack_path(pack_id).read_bytes()
            _check(blake3.blake3(data).digest() == pack_id, "pack hash")
            _check(data[:8] == MAGIC and data[-8:] == MAGIC, "pack magic")
            n = int.from_bytes(data[-12:-8], "little")
            key = _hkdf(self.ke, data[8:40], b"pack")
            sealed = data[len(data) - 12 - n : len(data) - 12]
            btype, entries = msgpack.unpackb(AESGCM(key).decrypt(_nonce(1 << 95), sealed, MAGIC))
            header = {e[0]: e[1:] for e in entries}
            for blob_id, p in blobs:
                _check(p.salt == data[8:40] and btype == p.type, "pack header")
                _check(header.get(blob_id) == [p.offset, p.length, p.raw_length], "pack header")
                _check(p.offset + p.length <= len(data) - 12 - n, "blob past the header")
                self.load_blob(blob_id, p.type)
                count += 1
        return count

    # ------------------------------------------------------------- snapshots
    def snapshots(self) -> list[tuple[datetime, str, dict]]:  # type: ignore[type-arg]
        """(time, id, snapshot) of every snapshot, oldest first (§8: times as instants)."""
        out = []
        for name in self.names("snapshots"):
            d = msgpack.unpackb(self.load_object(f"snapshots/{name}", "snapshot"), raw=False)
            _check(type(d) is dict and d.get("version") == 1, "snapshot version")
            for k, v in d.items():
                _check(k in SNAPSHOT_KEYS and isinstance(v, SNAPSHOT_KEYS[k]), f"snapshot {k}")
            _check({"time", "host", "user", "paths", "tree"} <= d.keys(), "snapshot fields")
            _check(len(d["tree"]) == 32, "snapshot tree")
            when = datetime.fromisoformat(d["time"])
            _check(when.tzinfo is not None, "snapshot time without offset")
            out.append((when, name, d))
        out.sort(key=lambda t: (t[0], t[1]))
        return out

    # ----------------------------------------------------------------- trees
    def tree(self, tree_id: bytes) -> list[dict]:  # type: ignore[type-arg]  # §7.1
        d = msgpack.unpackb(self.load_blob(tree_id, TREE), raw=False)
        _check(d["version"] == 1, "tree version")
        nodes, seen = [], set()
        for n in d["nodes"]:
            _check(set(n) <= NODE_KEYS and n["type"] in NODE_TYPES, "node keys")
            name = n["name"]
            _check(type(name) is bytes and name not in (b"", b".", b"..") and b"/" not in name
                   and b"\0" not in name, "node name")  # fmt: skip
            if name in seen:
                continue
            seen.add(name)
            nodes.append(n)
        return nodes

    def find(self, root: bytes, path: bytes) -> dict:  # type: ignore[type-arg]  # §10.1 step 6
        """The node of the directory ``path`` below the root tree (a synthetic one for /)."""
        node: dict = {"type": "dir", "subtree": root}  # type: ignore[type-arg]
        for part in [p for p in path.split(b"/") if p]:
            _check(node["type"] == "dir", "path through a non-directory")
            node = next(n for n in self.tree(node["subtree"]) if n["name"] == part)
        return node

    # --------------------------------------------------------------- restore
    def restore(self, root: bytes, path: bytes, target: Path) -> None:
        """Restores the entries of the directory ``path`` of a snapshot into ``target`` and
        that directory's metadata onto ``target`` (§10.1)."""
        top = self.find(root, path)
        target.mkdir(parents=True, exist_ok=True)
        links: dict[tuple[int, int], bytes] = {}
        dirs: list[tuple[bytes, dict]] = []  # type: ignore[type-arg]
        self._restore_dir(top, os.fsencode(target), links, dirs)
        if path.strip(b"/"):
            dirs.append((os.fsencode(target), top))
        for p, node in dirs:  # deepest first: children were appended before parents
            _metadata(p, node)

    def _restore_dir(self, node: dict, at: bytes, links: dict, dirs: list) -> None:  # type: ignore[type-arg]
        for n in self.tree(node["subtree"]) if "subtree" in node else []:
            p = at + b"/" + n["name"]
            kind = n["type"]
            if kind == "dir":
                os.mkdir(p, 0o700)
                self._restore_dir(n, p, links, dirs)
                dirs.append((p, n))
                continue
            if kind == "file":
                key = (n.get("dev", 0), n.get("inode", 0))
                if n.get("links", 1) > 1 and key[1] and key in links:
                    os.link(links[key], p)  # the first one's metadata stays (§10.1 step 9)
                    continue
                links[key] = p
                self._write_file(n, p)
            elif kind == "symlink":
                os.symlink(n["target"], p)
            elif kind == "fifo":
                os.mkfifo(p, 0o600)
            elif kind in ("chardev", "blockdev"):
                flag = stat.S_IFCHR if kind == "chardev" else stat.S_IFBLK
                os.mknod(p, 0o600 | flag, n.get("rdev", 0))
            else:
                continue  # sockets are not created
            _metadata(p, n)

    def _write_file(self, n: dict, p: bytes) -> None:  # type: ignore[type-arg]
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            pos = 0
            for blob_id in n.get("content", []):
                data = self.load_blob(blob_id, DATA)
                for i in range(0, len(data), HOLE):
                    block = data[i : i + HOLE]
                    if block.count(0) != len(block):
                        os.pwrite(fd, block, pos + i)
                pos += len(data)
            _check(pos == n.get("size", 0), "file size")
            os.ftruncate(fd, pos)
        finally:
            os.close(fd)


def _owner(n: dict) -> tuple[int, int]:  # type: ignore[type-arg]  # §7.2 Owners
    """The numbers of ``user`` and ``group`` on this system if they exist there, else the stored
    numbers."""
    uid, gid = n.get("uid", 0), n.get("gid", 0)
    try:
        uid = pwd.getpwnam(n["user"]).pw_uid if "user" in n else uid
    except KeyError:
        pass
    try:
        gid = grp.getgrnam(n["group"]).gr_gid if "group" in n else gid
    except KeyError:
        pass
    return uid, gid


def _metadata(p: bytes, n: dict) -> None:  # type: ignore[type-arg]  # §10.1 step 8
    """Owner, mode, xattrs, times: in that order (chown clears setuid), never through a link."""
    link = n["type"] == "symlink"
    if os.geteuid() == 0:  # as another user, owners are left as they are (§10.1)
        os.chown(p, *_owner(n), follow_symlinks=False)
    if not link:
        os.chmod(p, n.get("mode", 0))
    for key, value in n.get("xattrs", []):
        try:
            os.setxattr(p, key, value, follow_symlinks=False)
        except PermissionError:
            if not link:
                raise
    os.utime(p, ns=(n.get("atime", 0), n.get("mtime", 0)), follow_symlinks=False)
