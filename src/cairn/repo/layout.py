"""Names of repository objects in the store (docs/format.md §2)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from cairn.core.errors import NotFoundError, UsageError

CONFIG = "config"
KEYS = "keys/"
DATA = "data/"
INDEX = "index/"
SNAPSHOTS = "snapshots/"
LOCKS = "locks/"
OPERATIONS = "operations/"

DATA_BLOB = 0
TREE_BLOB = 1
BLOB_TYPES = {DATA_BLOB: "data", TREE_BLOB: "tree"}

_HEX_ID = re.compile(r"[0-9a-f]{64}")


def key_name(hex_id: str) -> str:
    return KEYS + hex_id


def is_key_name(name: str) -> bool:
    """``keys/<64 hex>``: the name of a key file, and nothing else."""
    return name.startswith(KEYS) and _HEX_ID.fullmatch(name[len(KEYS) :]) is not None


def pack_name(hex_id: str) -> str:
    return f"{DATA}{hex_id[:2]}/{hex_id}"


def snapshot_name(hex_id: str) -> str:
    return SNAPSHOTS + hex_id


def id_of(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def pack_id_of(name: str) -> bytes | None:
    """The id of the pack named ``name``: ``data/<hh>/<64 hex>`` where ``<hh>`` is the id's
    first two digits. None for any other name (a stray file in data/ is not a pack)."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != DATA.rstrip("/"):
        return None
    hex_id = parts[2]
    if not _HEX_ID.fullmatch(hex_id) or parts[1] != hex_id[:2]:
        return None
    return bytes.fromhex(hex_id)


def by_prefix(ids: Iterable[str], ref: str, what: str) -> str:
    """The one id among ``ids`` that starts with ``ref`` (hex digits, any case), as users
    name snapshots, keys, index objects: raises for a ``ref`` that is not hex, that matches
    nothing, or that matches more than one."""
    ref = ref.lower()
    if not ref or any(c not in "0123456789abcdef" for c in ref):
        article = "an" if what[:1] in "aeiou" else "a"
        raise UsageError(f"{ref!r} is not {article} {what} id (use a hex id or a prefix of one)")
    matches = [i for i in ids if i.startswith(ref)]
    if not matches:
        raise NotFoundError(f"no {what} with id {ref}")
    if len(matches) > 1:
        raise UsageError(f"{what} id prefix {ref} is ambiguous ({len(matches)} match)")
    return matches[0]
