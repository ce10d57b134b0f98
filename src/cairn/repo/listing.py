"""One listing of a whole repository, for a prune (docs/format.md §12.3).

A prune needs the names under locks/, snapshots/, index/ and data/ (with each pack's storage
class and date on an object store). Listed one prefix at a time that is four LIST requests at
least, where a repository of up to a thousand objects answers one listing of everything in a
single request (a larger one a page per thousand objects, operation records included). A
repository that shares its prefix with other objects (at the top of a bucket or a disk that
holds other things) would make that listing page through them: it stops after a thousand
such names, and the prune lists prefix by prefix instead.

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
from collections.abc import Iterator
from dataclasses import dataclass, field

from cairn.repo import layout
from cairn.storage.archive import ObjectInfo
from cairn.storage.base import Storage

# the repository's own prefixes; the last of them in key order ends the listing
OWN = (layout.DATA, layout.INDEX, layout.KEYS, layout.LOCKS, layout.OPERATIONS, layout.SNAPSHOTS)
LAST = max(OWN)
# objects of other names (a repository at the top of a shared bucket or disk) that one listing
# pages through before the prune lists prefix by prefix instead
FOREIGN_LIMIT = 1000


@dataclass
class RepoListing:
    """Every object of a repository as one listing saw them."""

    sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # prefix -> name -> size
    infos: dict[str, ObjectInfo] | None = None  # data/: class and date (object stores only)
    count: int = 0  # objects listed (strays and unknown prefixes too): what the LIST paged
    started: float = 0.0  # time.time() when the listing began
    # False when it stopped among too many objects not of the repository: the rest unknown
    complete: bool = True

    def names(self, prefix: str) -> dict[str, int]:
        """name -> size of every object listed under ``prefix`` (one of layout's prefixes)."""
        return self.sizes.get(prefix, {})


def _prefix(name: str) -> str:
    head, slash, _ = name.partition("/")
    return head + slash


def list_repository(storage: Storage) -> RepoListing:
    """Lists everything under the repository once: on an object store with each object's
    storage class and date (the same LIST requests), on a local directory by walking it.
    It stops at the first name past the repository's last prefix (no page is asked for
    beyond), and gives up (``complete`` False) after FOREIGN_LIMIT names of no prefix of
    the repository's."""
    out = RepoListing(started=time.time())
    archive = storage.archive
    if archive is not None:
        out.infos = {}
        listing: Iterator[tuple[str, int, ObjectInfo | None]] = (
            (i.name, i.size, i) for i in archive.list_with_class("")
        )
    else:
        listing = ((name, size, None) for name, size in storage.list(""))
    foreign = 0
    for name, size, info in listing:
        out.count += 1  # the pages asked for: every name taken counts, the last one too
        if name > LAST and not name.startswith(LAST):
            break
        prefix = _prefix(name)
        if prefix not in OWN and name != layout.CONFIG:
            foreign += 1
            if foreign > FOREIGN_LIMIT:
                out.complete = False
                break
            continue
        out.sizes.setdefault(prefix, {})[name] = size
        if info is not None and out.infos is not None and prefix == layout.DATA:
            out.infos[name] = info
    return out
