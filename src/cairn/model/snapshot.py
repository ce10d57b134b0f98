"""Snapshots: what was backed up, when, from where, and what it cost."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime

import msgpack

SNAPSHOT_VERSION = 1


@dataclass
class Summary:
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    dirs_new: int = 0  # directories whose tree blob was not in the repository yet
    dirs_unchanged: int = 0
    bytes_read: int = 0
    bytes_total: int = 0
    data_blobs_added: int = 0
    tree_blobs_added: int = 0
    bytes_added: int = 0  # plaintext bytes of new blobs
    bytes_stored: int = 0  # encrypted, compressed bytes of new blobs
    packs_written: int = 0
    files_changed_while_read: int = 0
    errors: int = 0
    duration: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Snapshot:
    time: datetime
    host: str
    user: str
    paths: list[str]
    tree: bytes
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    uid: int = 0
    gid: int = 0
    excludes: list[str] = field(default_factory=list)
    program: str = ""
    summary: Summary = field(default_factory=Summary)
    original: str | None = None  # for a repaired snapshot: the id of the damaged one
    id: str = ""  # hex object id, set when loaded or saved

    def encode(self) -> bytes:
        d = asdict(self)
        d.pop("id")
        d["time"] = self.time.isoformat()
        d["paths"] = [os.fsencode(p) for p in self.paths]  # raw bytes: any path round-trips
        d["excludes"] = [os.fsencode(p) for p in self.excludes]
        d["version"] = SNAPSHOT_VERSION
        return msgpack.packb(d, use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, hex_id: str, data: bytes) -> Snapshot:
        d = msgpack.unpackb(data, raw=False)
        if d.pop("version", None) != SNAPSHOT_VERSION:
            raise ValueError("unsupported snapshot version")
        d["time"] = datetime.fromisoformat(d["time"])
        d["paths"] = [os.fsdecode(p) for p in d["paths"]]
        d["excludes"] = [os.fsdecode(p) for p in d.get("excludes", [])]
        known = Summary.__dataclass_fields__
        d["summary"] = Summary(**{k: v for k, v in d.get("summary", {}).items() if k in known})
        return cls(id=hex_id, **d)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "short_id": self.id[:8],
            "time": self.time.isoformat(),
            "host": self.host,
            "user": self.user,
            "paths": self.paths,
            "tags": self.tags,
            "tree": self.tree.hex(),
            "parent": self.parent,
            "program": self.program,
            "original": self.original,
            "summary": self.summary.as_dict(),
        }
