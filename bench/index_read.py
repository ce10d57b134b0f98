"""Reads a repository's whole index the way one command does, in a process of its own, and
prints the seconds it took as JSON (the caller measures the process's peak RSS):

    python -m bench.index_read {check,prune}

``check``: every index object's packs, kept for the pack checks, and the in-memory index made
from them (``Checker._index``); ``prune``: the same as a prune plans from them
(``plan.read_index``), then its plan and report (``make_plan``, ``_report_from``) as if
snapshots used the blobs ``synthetic_usage`` picks: of every ten packs (in the index's
order), one unused (deleted), one used for a fifth of its blobs (repacked), eight used whole
(kept), every pack in the store at the size of its blobs. The used ids are held as the
prune's walk holds them (a set of ids for a cairn that plans from records, marks in the
in-memory index for one that plans from columns); making them is not timed ("used_s"
apart). The repository and its password come from the environment, as the command gets them
(CAIRN_REPOSITORY, CAIRN_PASSWORD and the store's credentials). Run by ``bench.index_open
--reads``. Also prints the process's RSS before the read (imports, the repository opened).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.core.memory import tune_malloc
from cairn.ops.check import Checker
from cairn.ops.progress import NullProgress
from cairn.ops.prune import PruneOptions, plan
from cairn.repo import layout
from cairn.repo.repository import Repository


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    what = sys.argv[1]
    tune_malloc()  # as the cairn command does
    storage, _ = wrap_backend(
        backend_for(os.environ["CAIRN_REPOSITORY"], StoreOptions()), StoreOptions()
    )
    repo = Repository.open(storage, os.environ["CAIRN_PASSWORD"].encode())
    before = _rss_mib()
    t0 = time.monotonic()
    if what == "check":
        records, _ = Checker(repo, NullProgress())._index()
        extra: dict[str, object] = {}
    elif what == "prune":
        records, _ = plan.read_index(repo)
        len(repo.index)  # sorted in, as by the walk's first lookup
        t1 = time.monotonic()
        stored, used = synthetic_usage(repo, records)
        used_s = time.monotonic() - t1
        columns = getattr(records, "columns", records)  # from columns, or from records
        made = plan.make_plan(columns, stored, used, PruneOptions())
        report = plan._report_from(made, used, repo.config.pack_size)
        t0 += used_s
        extra = {
            "used_s": used_s,
            "kept": report.packs_kept,
            "repacked": report.packs_repacked,
            "deleted": report.packs_deleted,
            "blobs_removed": report.blobs_removed,
        }
    else:
        raise SystemExit(f"unknown: {what}")
    blobs = len(repo.index)
    took = time.monotonic() - t0
    doc = {"seconds": took, "packs": len(records), "blobs": blobs, "rss_before_mib": before}
    print(json.dumps({**doc, **extra}))


def synthetic_usage(repo: Repository, records: Any) -> tuple[dict[str, int], Any]:
    """Every pack stored, and the blobs used (see above), as the cairn running plans."""
    stored: dict[str, int] = {}
    columns = getattr(records, "columns", None)
    if columns is None:  # a cairn that plans from records: a set of ids
        ids: set[bytes] = set()
        for k, (pack_id, r) in enumerate(records.items()):
            stored[layout.pack_name(pack_id.hex())] = 40 + sum(b.length for b in r.blobs)
            if k % 10:
                ids.update(b.id for b in r.blobs[: len(r.blobs) // 5 if k % 10 == 1 else None])
        return stored, ids
    from cairn.ops.usage import UsedBlobs

    used = UsedBlobs(repo.index)
    joined = bytearray()
    for k, (pack_id, c) in enumerate(columns.items()):
        lengths = c.numbers[1::3]
        stored[layout.pack_name(pack_id.hex())] = 40 + sum(lengths)
        if k % 10:
            joined += c.ids[: (len(c) // 5 if k % 10 == 1 else len(c)) * 32]
        if len(joined) >= 32 << 20:  # marked as the walk marks them, 32 MiB of ids at a time
            used.add(joined)
            joined = bytearray()
    used.add(joined)
    return stored, used


if __name__ == "__main__":
    main()
