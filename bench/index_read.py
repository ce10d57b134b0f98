"""Reads a repository's whole index the way one command does, in a process of its own, and
prints the seconds it took as JSON (the caller measures the process's peak RSS):

    python -m bench.index_read {check,prune}

``check``: every index object's packs, kept for the pack checks, and the in-memory index made
from them (``Checker._index``); ``prune``: the same as a prune plans from them
(``plan.read_index``). The repository and its password come from the environment, as the
command gets them (CAIRN_REPOSITORY, CAIRN_PASSWORD and the store's credentials). Run by
``bench.index_open --reads``. Also prints the process's RSS before the read (imports, the
repository opened).
"""

from __future__ import annotations

import json
import os
import sys
import time

from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.core.memory import tune_malloc
from cairn.ops.check import Checker
from cairn.ops.progress import NullProgress
from cairn.ops.prune import plan
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
    elif what == "prune":
        records, _ = plan.read_index(repo)
    else:
        raise SystemExit(f"unknown: {what}")
    blobs = len(repo.index)
    took = time.monotonic() - t0
    print(
        json.dumps(
            {"seconds": took, "packs": len(records), "blobs": blobs, "rss_before_mib": before}
        )
    )


if __name__ == "__main__":
    main()
