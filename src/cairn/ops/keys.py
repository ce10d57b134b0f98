"""Passwords of a repository: the key files that each wrap the same master keys.

Adding, removing or changing a password only writes or deletes ``keys/<id>`` objects; no other
object changes, because everything else is encrypted under the master keys, not the password.

The key that opened the repository (the "current" key) cannot be removed: whoever removes a
key must have opened the repository with another password, which so is known to work. The last
key can never be removed. ``change_password`` writes the new key, checks that it opens, and only
then deletes the current one; a crash in between leaves both passwords working.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import blake3

from cairn.core.errors import (
    IntegrityError,
    ObjectMissing,
    RepositoryError,
    UsageError,
    WrongPassword,
)
from cairn.crypto.kdf import KdfParams
from cairn.crypto.keys import (
    TEXT_FIELDS,
    BadPassword,
    KeyFileError,
    open_key_file,
    parse_key_file,
    read_key_file,
    unwrap,
)
from cairn.repo import layout
from cairn.repo.config import RepoConfig
from cairn.repo.repository import Repository
from cairn.storage.base import Storage


@dataclass
class KeyInfo:
    id: str
    current: bool
    created: str = ""
    host: str = ""
    username: str = ""
    kdf: dict[str, object] = field(default_factory=dict)
    error: str | None = None  # the key file is damaged

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "current": self.current,
            "created": self.created,
            "host": self.host,
            "username": self.username,
            "kdf": self.kdf,
            "error": self.error,
        }


def key_ids(repo: Repository) -> list[str]:
    return key_ids_in(repo.storage)


def list_keys(repo: Repository) -> list[KeyInfo]:
    """Every key file, oldest first; a damaged one is listed with its error."""
    keys = []
    for key_id in key_ids(repo):
        info = KeyInfo(id=key_id, current=key_id == repo.key_id)
        try:
            doc = read_key_file(repo.storage.read(layout.key_name(key_id)))
        except KeyFileError as e:
            info.error = str(e)
        else:
            info.created = str(doc.get("created", ""))
            info.host = str(doc.get("host", ""))
            info.username = str(doc.get("username", ""))
            info.kdf = dict(doc["kdf"])  # type: ignore[call-overload]
        keys.append(info)
    keys.sort(key=lambda k: (k.created, k.id))
    return keys


def check_labels(host: str | None, username: str | None) -> None:
    """The host and user a key file records, within what a reader accepts (§5.1)."""
    for what, value, option in (("host", host, "--host"), ("username", username, "--user")):
        longest = TEXT_FIELDS[what]
        if value is not None and len(value) > longest:
            raise UsageError(f"{option} is longer than {longest} characters")


def add_key(
    repo: Repository,
    password: bytes,
    kdf: KdfParams | None = None,
    host: str | None = None,
    username: str | None = None,
) -> str:
    """Writes a key file for ``password`` (recording ``host`` and ``username``, by default
    this machine's and user's), reads it back and checks that it opens."""
    if not password:
        raise UsageError("an empty password is not allowed")
    check_labels(host, username)
    key_id = repo.add_key(password, kdf, host, username)
    name = layout.key_name(key_id)
    try:
        key = unwrap(repo.storage.read(name), password)
    except (BadPassword, KeyFileError) as e:
        repo.storage.delete(name)
        raise IntegrityError(name, f"the new key file does not open ({e}); removed it") from None
    if key != repo.key:
        repo.storage.delete(name)
        raise IntegrityError(name, "the new key file wraps other keys; removed it")
    return key_id


def resolve_key(repo: Repository, ref: str) -> str:
    """A key id from a unique prefix of it."""
    return layout.by_prefix(key_ids(repo), ref, "key")


def remove_key(repo: Repository, ref: str) -> str:
    key_id = resolve_key(repo, ref)
    if key_ids(repo) == [key_id]:
        raise RepositoryError("refusing to remove the last key: the repository would not open")
    if key_id == repo.key_id:
        raise RepositoryError(
            f"refusing to remove key {key_id[:8]}, the one in use: open the repository with "
            "another password to remove it, or use `cairn key passwd` to replace it"
        )
    repo.storage.delete(layout.key_name(key_id))
    return key_id


def change_password(repo: Repository, password: bytes, kdf: KdfParams | None = None) -> str:
    """Replaces the current key by one for ``password``; returns the new key id."""
    old = repo.key_id
    if old is None:
        raise RepositoryError("the key in use is unknown: cannot replace it")
    new = add_key(repo, password, kdf)
    repo.storage.delete(layout.key_name(old))
    repo.key_id = new
    return new


def export_key(
    repo: Repository,
    password: bytes,
    kdf: KdfParams | None = None,
    host: str | None = None,
    username: str | None = None,
) -> bytes:
    """A key file for ``password`` that is not stored in the repository (to keep apart, for
    ``import_key``); checked to open to the repository's master keys."""
    if not password:
        raise UsageError("an empty password is not allowed")
    check_labels(host, username)
    data = repo.key_file(password, kdf, host, username)
    if unwrap(data, password) != repo.key:
        raise IntegrityError("exported key", "the key file does not open; nothing written")
    return data


def import_key(storage: Storage, data: bytes, password: bytes, what: str) -> tuple[str, bool]:
    """Stores the key file ``data`` (named ``what`` in errors) as ``keys/<id>`` once it is
    known to open with ``password`` to the keys of this repository (they open its config);
    needs no key of the repository, so it brings back one whose key files are lost. Returns
    (key id, whether it was stored: False if the repository holds it already)."""
    try:
        key_file = parse_key_file(data)
    except KeyFileError as e:
        raise UsageError(f"{what}: {e}") from None
    try:
        key = open_key_file(key_file, password)
    except BadPassword:
        raise WrongPassword(f"wrong password: it does not open {what}") from None
    except KeyFileError as e:
        raise UsageError(f"{what}: {e}") from None
    try:
        raw = storage.read(layout.CONFIG)
    except ObjectMissing:
        where = storage.describe()
        raise RepositoryError(f"{where} is not a cairn repository (no config)") from None
    try:
        Repository(storage, key, RepoConfig.new()).unseal(layout.CONFIG, raw)
    except IntegrityError:
        raise RepositoryError(
            f"{what} holds the keys of another repository: it does not open this one's config"
        ) from None
    key_id = blake3.blake3(data).hexdigest()
    if key_id in key_ids_in(storage):
        return key_id, False
    storage.write(layout.key_name(key_id), data)
    return key_id, True


def key_ids_in(storage: Storage) -> list[str]:
    return sorted(layout.id_of(name) for name, _ in storage.list(layout.KEYS))
