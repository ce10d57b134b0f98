"""Operation records (docs/format.md §8.1): written once at the end of a command that writes
to the repository, read by `cairn cost --month`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cairn.core.errors import CairnError
from cairn.model.oprecord import OpRecord, RecordFormatError
from cairn.repo import layout
from cairn.repo.repository import Repository

RECORD_BYTES = 210  # an operation record as stored, about


def save_record(repo: Repository, record: OpRecord) -> str:
    """Stores ``record`` as ``operations/<id>``; returns the id."""
    record.id = repo.save_object(layout.OPERATIONS, record.encode())
    return record.id


@dataclass
class RecordListing:
    records: list[OpRecord] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)  # id -> what is wrong


def load_records(
    repo: Repository,
    dated: Mapping[str, datetime | None] | None = None,
    since: datetime | None = None,
) -> RecordListing:
    """Every operation record, in time order. With ``dated`` (name -> the store's date of
    the object) and ``since``, a record the store dates before ``since`` is not read: its
    command ended before then (and so did the backups it removed)."""
    out = RecordListing()
    for name, _ in repo.storage.list(layout.OPERATIONS):
        when = (dated or {}).get(name)
        if when is not None and since is not None and when < since:
            continue
        hex_id = layout.id_of(name)
        try:
            out.records.append(OpRecord.decode(hex_id, repo.load_object(name)))
        except (RecordFormatError, CairnError) as e:
            out.damaged[hex_id] = str(e)
    out.records.sort(key=lambda r: (r.time, r.id))
    return out
