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
        return cls(
            _time(d["time"]),
            d["command"],
            d["host"],
            d["program"],
            _counters(d["requests"]),
            [_removed(b) for b in removed],
            hex_id,
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


def _counters(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise RecordFormatError("requests is not a map")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise RecordFormatError("requests holds something other than counters")
        out[k] = v
    return {k: out.get(k, 0) for k in COUNTERS}
