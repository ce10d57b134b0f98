"""The key use cases: list, add, remove and change the passwords of a repository. Every
password unwraps the same master keys, so none of this rewrites data (ops/keys.py)."""

from __future__ import annotations

from cairn.app.context import Session
from cairn.app.records import record_run
from cairn.ops import keys as ops_keys
from cairn.ops.keys import KeyInfo

__all__ = ["KeyInfo", "add", "change_password", "list_keys", "remove"]


def list_keys(session: Session) -> list[KeyInfo]:
    """Every key file; the one that opened the repository is marked ``current``."""
    return ops_keys.list_keys(session.repo)


def add(session: Session, password: bytes) -> str:
    """A new key file for ``password``; returns its id."""
    key_id = ops_keys.add_key(session.repo, password)
    record_run(session, "key add")
    return key_id


def remove(session: Session, ref: str) -> str:
    """Removes the key ``ref`` (an id or unique prefix); not the last, nor the one in use."""
    removed = ops_keys.remove_key(session.repo, ref)
    record_run(session, "key remove")
    return removed


def change_password(session: Session, password: bytes) -> tuple[str, str]:
    """Adds a key for ``password``, checks it opens, removes the current one: (new, old)."""
    old = session.repo.key_id or ""
    new = ops_keys.change_password(session.repo, password)
    record_run(session, "key passwd")
    return new, old
