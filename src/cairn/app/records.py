"""What a command that writes cost: its requests, kept in the repository as an operation
record (docs/format.md §8.1) so that `cairn cost --month` can sum them."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from cairn import __version__
from cairn.app.context import Session
from cairn.core import clock
from cairn.model.oprecord import DeletedObject, OpRecord, RemovedBackup
from cairn.model.snapshot import Snapshot
from cairn.ops.cost.estimate import backup_requests, data_packs
from cairn.ops.oprecords import RECORD_BYTES, save_record

__all__ = ["RECORD_BYTES", "record_run"]


def record_run(
    session: Session,
    command: str,
    removed: Sequence[Snapshot] = (),
    classes: Mapping[str, Mapping[str, int]] | None = None,
    deleted: Sequence[DeletedObject] = (),
) -> dict[str, int]:
    """Writes the record of ``command``'s run (everything the session sent so far: the
    record's own PUT comes after its counts, as a snapshot's does; and what the backups of the
    ``removed`` snapshots cost, if they recorded it; ``classes``: of those requests, the ones
    made of objects in each storage class; ``deleted``: the objects it deleted, with their
    classes and dates), and returns all the session's requests, that PUT included (what
    --json reports)."""
    record = OpRecord(
        time=clock.now(),
        command=command,
        host=socket.gethostname(),
        program=f"cairn {__version__}",
        requests=session.usage(),
        removed=[
            RemovedBackup(s.time, backup_requests(s.summary, dry_run=False), data_packs(s.summary))
            for s in removed
            if s.summary.requests
        ],
        classes={c: dict(v) for c, v in (classes or {}).items()},
        deleted=list(deleted),
    )
    save_record(session.repo, record)
    return session.usage()
