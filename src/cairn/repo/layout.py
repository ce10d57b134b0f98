"""Names of repository objects in the store."""

from __future__ import annotations

CONFIG = "config"
KEYS = "keys/"
DATA = "data/"
INDEX = "index/"
SNAPSHOTS = "snapshots/"
LOCKS = "locks/"

DATA_BLOB = 0
TREE_BLOB = 1
BLOB_TYPES = {DATA_BLOB: "data", TREE_BLOB: "tree"}


def key_name(hex_id: str) -> str:
    return KEYS + hex_id


def pack_name(hex_id: str) -> str:
    return f"{DATA}{hex_id[:2]}/{hex_id}"


def index_name(hex_id: str) -> str:
    return INDEX + hex_id


def snapshot_name(hex_id: str) -> str:
    return SNAPSHOTS + hex_id


def id_of(name: str) -> str:
    return name.rsplit("/", 1)[-1]
