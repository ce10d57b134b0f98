"""The error tree. Every error cairn raises on purpose carries its own exit code.

CairnError (exit 1)
├── UsageError            bad arguments or input that the user can fix
├── ConfigError           a bad configuration file
├── WrongPassword         no key in the repository opens with the given password
├── RepositoryError       the repository is missing, not a repository, or of a newer format
│   └── NotFoundError     an object, snapshot or path does not exist
├── IntegrityError        an object failed authentication or its checksum (names the object)
└── StorageError          the store could not be reached or refused an operation
    └── ObjectArchived    an object in an archive class (GLACIER) that must be restored first

Interrupted (a KeyboardInterrupt, exit 130): Ctrl-C, told with what was kept and how to go on;
a KeyboardInterrupt, so nothing that carries on past a CairnError carries on past it.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_PENDING = 75  # EX_TEMPFAIL: archived data is being restored, run the command again later
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


class CairnError(Exception):
    """Base of all expected errors: a one-line message and an exit code."""

    exit_code = EXIT_FAILED

    def __str__(self) -> str:
        return " ".join(str(a) for a in self.args).replace("\n", " ")


class UsageError(CairnError):
    exit_code = EXIT_USAGE


class ConfigError(CairnError):
    pass


class WrongPassword(CairnError):
    pass


class RepositoryError(CairnError):
    pass


class NotFoundError(RepositoryError):
    pass


class IntegrityError(CairnError):
    """Data that failed authentication, a checksum, or a structural check."""

    def __init__(self, obj: str, detail: str) -> None:
        super().__init__(f"{obj}: {detail}")
        self.obj = obj
        self.detail = detail


class StorageError(CairnError):
    pass


class TransientStorageError(StorageError):
    """Throttling, a server error or a lost connection: the operation may succeed if retried."""


class ObjectMissing(StorageError):
    """The store has no object of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: no such object in the repository")
        self.name = name


class ObjectArchived(StorageError):
    """The object is in an archive storage class and has no restored copy to read."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: archived (GLACIER or DEEP_ARCHIVE); it must be restored first")
        self.name = name


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command that says what the interruption left and how to go on."""

    exit_code = EXIT_INTERRUPTED

    def __str__(self) -> str:
        return " ".join(str(a) for a in self.args)
