"""The key files of a repository, read and put in the order they are tried when opening it.

Every key file is read and checked first (a few hundred bytes each), then tried cheapest KDF
first: a key file planted with the most expensive parameters the bounds allow is tried only
after every cheaper one failed, so it cannot make opening slow for the holder of a real key. A
key hint (an id or a unique prefix of one) puts that key file before all others.

A key file this host opened before can be tried alone (``open_known``), read while the config
is, before any listing: on an object store that saves the listing's round trip. Only when it is
gone, damaged or refuses the password are the keys listed, and then all of them tried as above.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.core.errors import IntegrityError, ObjectMissing, WrongPassword
from cairn.core.overlap import Overlap
from cairn.crypto.keys import (
    BadPassword,
    KeyFile,
    KeyFileError,
    MasterKey,
    open_key_file,
    parse_key_file,
)
from cairn.repo import layout
from cairn.storage.base import Storage


@dataclass(frozen=True)
class Candidate:
    name: str  # keys/<id>
    key_file: KeyFile

    @property
    def id(self) -> str:
        return layout.id_of(self.name)


@dataclass
class KeyFiles:
    candidates: list[Candidate]  # in the order to try them
    damaged: list[str]  # "keys/<id> (why)", for those that failed their checks
    hint_problem: str | None = None  # why the hint put no key file first


def read_key_files(
    storage: Storage, names: list[str], hint: str | None = None, overlap: Overlap | None = None
) -> KeyFiles:
    """The key files ``names``, checked, cheapest first (the hinted one before all); read on
    ``overlap``'s threads when it has some."""
    candidates: list[Candidate] = []
    damaged: list[str] = []
    for name, data in (overlap or Overlap(0)).map(storage.read, sorted(names)):
        try:
            candidates.append(Candidate(name, parse_key_file(data.result())))
        except ObjectMissing:  # removed meanwhile by `key remove`
            continue
        except KeyFileError as e:
            damaged.append(f"{name} ({e})")
    candidates.sort(key=lambda c: (c.key_file.kdf.cost, c.key_file.kdf.memory_cost, c.name))
    found = KeyFiles(candidates, damaged)
    if hint:
        hinted = [c for c in candidates if c.id.startswith(hint)]
        if len(hinted) == 1:
            candidates.remove(hinted[0])
            candidates.insert(0, hinted[0])
        elif hinted:
            found.hint_problem = f"key hint {hint} matches {len(hinted)} keys"
        else:
            found.hint_problem = f"key hint {hint} matches no key"
    return found


def open_known(
    storage: Storage, name: str, password: bytes, overlap: Overlap | None = None
) -> tuple[str, MasterKey] | None:
    """(name, master key) from the key file ``name`` if it is there, intact, and opens with
    ``password``; None if it is gone or damaged (the caller lists the keys and tries them all,
    so a damaged key file is reported as it always was). Raises ``BadPassword`` if the password
    does not open it (the caller tries the others, not this one again)."""
    for candidate in read_key_files(storage, [name], overlap=overlap).candidates:
        try:
            return candidate.name, open_key_file(candidate.key_file, password)
        except KeyFileError:
            return None
    return None


def unlock(found: KeyFiles, password: bytes, refused: int = 0) -> tuple[str, MasterKey]:
    """(name, master key) of the first of ``found`` that ``password`` opens. Raises
    ``WrongPassword`` when none does, or ``IntegrityError`` when every key file is damaged.
    ``refused``: key files tried already, not among ``found``, that the password did not open."""
    for candidate in found.candidates:
        try:
            return candidate.name, open_key_file(candidate.key_file, password)
        except BadPassword:  # wrong key: another may open
            refused += 1
        except KeyFileError as e:
            found.damaged.append(f"{candidate.name} ({e})")
    if found.damaged and not refused:
        raise IntegrityError(found.damaged[0], "every key file is damaged")
    hint = f" ({found.hint_problem})" if found.hint_problem else ""
    raise WrongPassword(f"wrong password: no key in the repository opens with it{hint}")
