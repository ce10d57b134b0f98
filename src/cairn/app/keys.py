"""The key use cases: list, add, remove and change the passwords of a repository, export its
master keys to a key file kept apart, and import such a file. Every password unwraps the same
master keys, so none of this rewrites data (ops/keys.py)."""

from __future__ import annotations

import os

import blake3

from cairn.app.context import RepoSpec, Session, backend_for, wrap_backend
from cairn.app.records import record_run
from cairn.core.errors import UsageError
from cairn.ops import keys as ops_keys
from cairn.ops.keys import KeyInfo

__all__ = [
    "KeyInfo",
    "add",
    "change_password",
    "export",
    "import_key",
    "list_keys",
    "remove",
]


def list_keys(session: Session) -> list[KeyInfo]:
    """Every key file; the one that opened the repository is marked ``current``."""
    return ops_keys.list_keys(session.repo)


def add(
    session: Session, password: bytes, host: str | None = None, username: str | None = None
) -> str:
    """A new key file for ``password`` (recording ``host`` and ``username``, by default this
    machine's and user's); returns its id."""
    key_id = ops_keys.add_key(session.repo, password, host=host, username=username)
    record_run(session, "key add")
    return key_id


def export(
    session: Session,
    password: bytes,
    path: str,
    host: str | None = None,
    username: str | None = None,
) -> str:
    """Writes the master keys, wrapped under ``password``, as a key file at ``path`` (a new
    file, readable by its owner only); returns the id it has once imported."""
    data = ops_keys.export_key(session.repo, password, host=host, username=username)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists: give a new file name") from None
    except OSError as e:
        raise UsageError(f"cannot create {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        os.unlink(path)
        raise UsageError(f"cannot write {path}: {e.strerror}") from None
    return blake3.blake3(data).hexdigest()


def import_key(spec: RepoSpec, path: str) -> tuple[str, bool, dict[str, int]]:
    """Adds the key file at ``path`` (from ``export``) to the repository of ``spec``, which
    needs no working key: the password (from ``spec``) is the one that opens the file.
    Returns (key id, whether it was added: False if the repository holds it already, the
    requests and bytes it took)."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 16)  # more than a key file holds: refused as such
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    storage, meter = wrap_backend(backend_for(spec.resolved_url(), spec.store), spec.store)
    key_id, added = ops_keys.import_key(storage, data, spec.password.get(), path)
    return key_id, added, meter.snapshot().as_dict()


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
