"""One listing of a whole repository, for a prune (docs/format.md §12.3).

A prune needs the names under locks/, snapshots/, index/ and data/ (with each pack's storage
class and date on an object store). Listed one prefix at a time that is four LIST requests at
least, where a repository of up to a thousand objects answers one listing of everything in a
single request (and a larger one in as many pages as its objects fill, never more than the
prefixes listed apart would take, less three).

In key order, data/ comes before index/ and snapshots/: the reverse of the order that makes a
prune's view consistent by construction (a snapshot is written after its index objects, which
are written after their packs). A backup that ends while the listing pages on can leave a
snapshot listed whose index object was not, or an index object listed whose pack was not.
``RepoListing`` is therefore a view to check: the prune uses it only when every pack the index
objects it read name was listed and every blob the snapshots use is in one of those index
objects (``ops/prune/plan.py``), and otherwise lists again, prefix by prefix, in the safe order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cairn.repo import layout
from cairn.storage.archive import ObjectInfo
from cairn.storage.base import Storage


@dataclass
class RepoListing:
    """Every object of a repository as one listing saw them."""

    sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # prefix -> name -> size
    infos: dict[str, ObjectInfo] | None = None  # data/: class and date (object stores only)
    count: int = 0  # objects listed (strays and unknown prefixes too): what the LIST paged
    started: float = 0.0  # time.time() when the listing began

    def names(self, prefix: str) -> dict[str, int]:
        """name -> size of every object listed under ``prefix`` (one of layout's prefixes)."""
        return self.sizes.get(prefix, {})


def _prefix(name: str) -> str:
    head, slash, _ = name.partition("/")
    return head + slash


def list_repository(storage: Storage) -> RepoListing:
    """Lists everything under the repository once: on an object store with each object's
    storage class and date (the same LIST requests), on a local directory by walking it."""
    out = RepoListing(started=time.time())
    archive = storage.archive
    if archive is not None:
        out.infos = {}
        for info in archive.list_with_class(""):
            out.count += 1
            prefix = _prefix(info.name)
            out.sizes.setdefault(prefix, {})[info.name] = info.size
            if prefix == layout.DATA:
                out.infos[info.name] = info
    else:
        for name, size in storage.list(""):
            out.count += 1
            out.sizes.setdefault(_prefix(name), {})[name] = size
    return out
