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
    tree_packs_written: int = 0  # of packs_written (priced at the metadata class)
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
        """Raises ValueError (or TypeError, KeyError) for anything but a well-formed version 1
        snapshot: every field is checked against docs/format.md §8 before use."""
        d = msgpack.unpackb(data, raw=False)
        if type(d) is not dict:
            raise ValueError("not a map")
        if d.pop("version", None) != SNAPSHOT_VERSION:
            raise ValueError("unsupported snapshot version")
        unknown = set(d) - _FIELD_TYPES.keys()
        if unknown:
            raise ValueError(f"unknown fields {sorted(map(repr, unknown))}")
        for key, kinds in _FIELD_TYPES.items():
            if key in d and not isinstance(d[key], kinds):
                raise ValueError(f"{key} is a {type(d[key]).__name__}")
        missing = _REQUIRED - d.keys()
        if missing:
            raise ValueError(f"missing fields {sorted(missing)}")
        if len(d["tree"]) != 32:
            raise ValueError("tree is not a 32-byte id")
        for key, kinds in (("paths", (bytes, str)), ("excludes", (bytes, str)), ("tags", (str,))):
            if not all(type(v) in kinds for v in d.get(key, ())):
                raise ValueError(f"{key} holds something other than {kinds[0].__name__}")
        d["time"] = datetime.fromisoformat(d["time"])
        d["paths"] = [os.fsdecode(p) for p in d["paths"]]
        d["excludes"] = [os.fsdecode(p) for p in d.get("excludes", [])]
        d["summary"] = _summary(d.get("summary", {}))
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


# The fields of a snapshot object and their types (docs/format.md §8)
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "time": str,
    "host": str,
    "user": str,
    "paths": list,
    "tree": bytes,
    "tags": list,
    "parent": (str, type(None)),
    "uid": int,
    "gid": int,
    "excludes": list,
    "program": str,
    "summary": dict,
    "original": (str, type(None)),
}
_REQUIRED = frozenset({"time", "host", "user", "paths", "tree"})


def _summary(d: dict[object, object]) -> Summary:
    """The known counters of a summary map (unknown ones are ignored), each checked."""
    known = Summary.__dataclass_fields__
    out = {}
    for k, v in d.items():
        if k not in known:
            continue
        if k == "requests":
            if type(v) is not dict or not all(
                type(n) is str and type(c) is int for n, c in v.items()
            ):
                raise ValueError("summary requests is not a map of counts")
        elif k == "duration":
            if type(v) not in (int, float):
                raise ValueError("summary duration is not a number")
        elif type(v) is not int:
            raise ValueError(f"summary {k} is not an integer")
        out[k] = v
    return Summary(**out)  # type: ignore[arg-type]
