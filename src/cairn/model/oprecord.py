"""Operation records: what a command that writes to the repository (other than a backup, whose
snapshot records it) sent to the store, kept so that a month's bill can be summed later
(docs/format.md §8.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack

OPERATION_VERSION = 1
COUNTERS = ("put", "get", "head", "list", "delete", "bytes_up", "bytes_down")
_FIELDS = {"version", "time", "command", "host", "program", "requests"}


@dataclass
class RemovedBackup:
    """A backup whose snapshot the command removed: what the backup cost, kept so that its
    month's bill still has it."""

    time: datetime  # the snapshot's
    requests: dict[str, int]  # the whole backup's (its snapshot's PUT and lock's DELETE too)
    data_packs: int = 0  # of its PUTs, data packs (priced at the data class)


@dataclass(frozen=True)
class DeletedObject:
    """An object the command deleted (a prune's packs): its storage class, size and date in
    the store's listing, so that its month's bill has its storage until then and the fee for
    deleting it before its class's minimum duration."""

    storage_class: str
    size: int
    modified: datetime


class RecordFormatError(ValueError):
    """An operation record that does not follow format.md §8.1."""


@dataclass
class OpRecord:
    time: datetime  # when the command ended (UTC offset included)
    command: str  # "forget", "prune", "key add", ...
    host: str
    program: str = ""
    requests: dict[str, int] = field(default_factory=dict)  # by kind, bytes up and down
    removed: list[RemovedBackup] = field(default_factory=list)  # forget's removed backups
    id: str = ""  # hex object id, set when loaded or saved
    # of ``requests``, those made of objects in each storage class (a prune's pack reads and
    # deletions, its new data packs), priced at that class; the rest at the default class
    classes: dict[str, dict[str, int]] = field(default_factory=dict)
    deleted: list[DeletedObject] = field(default_factory=list)

    def encode(self) -> bytes:
        d = {
            "version": OPERATION_VERSION,
            "time": self.time.isoformat(),
            "command": self.command,
            "host": self.host,
            "program": self.program,
            "requests": {k: int(self.requests.get(k, 0)) for k in COUNTERS},
        }
        if self.removed:
            d["removed"] = [
                {
                    "time": b.time.isoformat(),
                    "requests": {k: int(b.requests.get(k, 0)) for k in COUNTERS},
                    "data_packs": b.data_packs,
                }
                for b in self.removed
            ]
        if self.classes:
            d["classes"] = {
                c: {k: int(v) for k, v in counts.items() if k in COUNTERS}
                for c, counts in self.classes.items()
            }
        if self.deleted:
            d["deleted"] = [[o.storage_class, o.size, o.modified.isoformat()] for o in self.deleted]
        return msgpack.packb(d, use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, hex_id: str, data: bytes) -> OpRecord:
        try:
            d = msgpack.unpackb(data, raw=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
            raise RecordFormatError(f"not MessagePack ({e})") from None
        if not isinstance(d, dict):
            raise RecordFormatError("not a map")
        if d.get("version") != OPERATION_VERSION:
            raise RecordFormatError(f"unknown operation record version {d.get('version')!r}")
        missing = _FIELDS - set(d)
        if missing:
            raise RecordFormatError(f"missing field {sorted(missing)[0]}")
        for name in ("time", "command", "host", "program"):
            if not isinstance(d[name], str):
                raise RecordFormatError(f"{name} is not a string")
        removed = d.get("removed", [])
        if not isinstance(removed, list):
            raise RecordFormatError("removed is not an array")
        classes = d.get("classes", {})
        if not isinstance(classes, Mapping) or not all(isinstance(c, str) for c in classes):
            raise RecordFormatError("classes is not a map of class names")
        deleted = d.get("deleted", [])
        if not isinstance(deleted, list):
            raise RecordFormatError("deleted is not an array")
        return cls(
            _time(d["time"]),
            d["command"],
            d["host"],
            d["program"],
            _counters(d["requests"]),
            [_removed(b) for b in removed],
            hex_id,
            {c: _counters(v) for c, v in classes.items()},
            [_deleted(o) for o in deleted],
        )


def _time(value: Any) -> datetime:
    try:
        time = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise RecordFormatError("a time is not ISO 8601") from None
    if time.tzinfo is None:
        raise RecordFormatError("a time has no UTC offset")
    return time


def _removed(value: Any) -> RemovedBackup:
    if not isinstance(value, Mapping) or not {"time", "requests", "data_packs"} <= set(value):
        raise RecordFormatError("an entry of removed is not a map of time, requests, data_packs")
    packs = value["data_packs"]
    if isinstance(packs, bool) or not isinstance(packs, int) or packs < 0:
        raise RecordFormatError("data_packs is not a counter")
    return RemovedBackup(_time(value["time"]), _counters(value["requests"]), packs)


def _deleted(value: Any) -> DeletedObject:
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not isinstance(value[0], str)
        or isinstance(value[1], bool)
        or not isinstance(value[1], int)
        or value[1] < 0
    ):
        raise RecordFormatError("an entry of deleted is not [class, size, time]")
    return DeletedObject(value[0], value[1], _time(value[2]))


def _counters(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise RecordFormatError("requests is not a map")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise RecordFormatError("requests holds something other than counters")
        out[k] = v
    return {k: out.get(k, 0) for k in COUNTERS}
