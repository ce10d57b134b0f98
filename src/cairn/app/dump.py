"""The dump use case: a file of a snapshot as its bytes, or a directory as a tar stream, written
to a stream (standard output, a file, a pipe) without touching the file system.

The snapshot is resolved before the index is loaded (a backup finishing meanwhile could make
``latest`` a snapshot whose blobs an index loaded earlier lacks), and the output is opened only
once the snapshot and the path are found: a mistyped one leaves an existing file alone.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

from cairn.app.context import Session
from cairn.app.events import Events
from cairn.ops.dump import Dumper, DumpSummary
from cairn.ops.snapshots import SnapshotFilter, resolve

__all__ = ["DumpRequest", "DumpResult", "DumpSummary", "dump"]


@dataclass(frozen=True)
class DumpRequest:
    snapshot: str  # "latest", an id, or a unique prefix of one
    path: str  # the file or directory in the snapshot ('/db.sql' or 'db.sql')
    output: Callable[[], AbstractContextManager[BinaryIO]]  # opens where the dump goes
    filter: SnapshotFilter | None = None  # which snapshots "latest" chooses from


@dataclass(frozen=True)
class DumpResult:
    snapshot: str  # the snapshot's id
    path: str
    summary: DumpSummary  # errors: entries of damaged trees left out of the tar


def dump(session: Session, request: DumpRequest, events: Events) -> DumpResult:
    repo = session.repo
    snap = resolve(repo, request.snapshot, request.filter)
    repo.load_index()  # after the snapshot: a newer one may use newer index objects
    defaults = session.defaults
    # as many reads in flight as a restore has threads (on an object store each waits a
    # round trip), and never fewer than a dump always had
    reads = max(4, defaults.restore_threads)
    dumper = Dumper(repo, events, workers=reads, tree_threads=defaults.tree_threads)
    node, at = dumper.find(snap, request.path)
    with request.output() as out:
        summary = dumper.write(node, at, out)
    return DumpResult(snap.id, request.path, summary)
