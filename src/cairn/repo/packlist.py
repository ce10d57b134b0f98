"""The packs in a store's data/: every object there whose name is a pack name.

Anything else under data/ (a README, .DS_Store, ``data/zz/xyz``, a file whose directory is not
the first two digits of its name) is not a pack: it is skipped with a warning, never parsed
as an id, never deleted as an orphan. Warnings go to ``warn`` or, by default, to the
``cairn`` logger, which the command line prints as one ``warning:`` line each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cairn.repo import layout
from cairn.storage.archive import ObjectInfo
from cairn.storage.base import Storage

Warn = Callable[[str, str], None]  # (object name, what is wrong with it)
STRAY = "not a pack (a pack is data/<2 hex>/<64 hex>, named by its id): ignored"


def log_warning(name: str, message: str) -> None:
    logging.getLogger("cairn").warning("%s: %s", name, message)


def stored_packs(
    storage: Storage, warn: Warn | None = None, listed: dict[str, int] | None = None
) -> dict[str, int]:
    """name -> size of every pack under data/; other objects there are reported and left out.
    ``listed``: data/ as a listing already made saw it (name -> size), instead of listing."""
    packs: dict[str, int] = {}
    for name, size in storage.list(layout.DATA) if listed is None else listed.items():
        if layout.pack_id_of(name) is None:
            (warn or log_warning)(name, STRAY)
            continue
        packs[name] = size
    return packs


def stored_pack_infos(
    storage: Storage, warn: Warn | None = None, listed: dict[str, ObjectInfo] | None = None
) -> dict[str, ObjectInfo] | None:
    """As ``stored_packs``, with each pack's storage class and date, from the same one listing
    (the store's archive capability); None for a store without one (a local directory).
    ``listed``: data/ as a listing already made saw it, instead of listing."""
    archive = storage.archive
    if archive is None:
        return None
    packs: dict[str, ObjectInfo] = {}
    for info in archive.list_with_class(layout.DATA) if listed is None else listed.values():
        if layout.pack_id_of(info.name) is None:
            (warn or log_warning)(info.name, STRAY)
            continue
        packs[info.name] = info
    return packs
