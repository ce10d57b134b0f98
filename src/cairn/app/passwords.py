"""Where the repository password comes from, in order of precedence:
--password-file, --password-command, $CAIRN_PASSWORD, $CAIRN_PASSWORD_FILE, a terminal prompt.

An empty password is never accepted for a new repository or key. An empty $CAIRN_PASSWORD is
still tried when opening (a repository made before empty passwords were refused would not open
otherwise); if it opens nothing, the error says it was empty."""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass

from cairn.core.errors import UsageError


@dataclass(frozen=True)
class PasswordSource:
    file: str | None = None
    command: str | None = None
    # what it is called where it is asked for: a copy's source has its own variables
    # (CAIRN_FROM_PASSWORD, CAIRN_FROM_PASSWORD_FILE), flags and prompt
    env: str = "CAIRN_PASSWORD"  # and env + "_FILE"
    flags: str = "--password-file, --password-command"
    prompt: str = "repository password"

    def get(self, confirm: bool = False) -> bytes:
        """The password; ``confirm``: a new one (asked twice at a prompt, never empty)."""
        if self.file:
            return _from_file(self.file)
        if self.command:
            return _from_command(self.command)
        env = os.environ.get(self.env)
        if env is not None:
            if not env and confirm:
                raise UsageError(f"{self.env} is empty: {EMPTY}")
            return env.encode()
        env_file = os.environ.get(self.env + "_FILE")
        if env_file:
            return _from_file(env_file)
        if sys.stdin.isatty():
            return _prompt(confirm, self.prompt)
        raise UsageError(f"no password: use {self.flags}, {self.env} or run on a terminal")


EMPTY = "an empty password is not allowed"


def _from_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read password file {path}: {e.strerror}") from None
    first = data.splitlines()[0] if data else b""
    if not first:
        what = "is empty" if not data.strip() else "has an empty first line"
        raise UsageError(f"password file {path} {what}: {EMPTY}")
    return first


def _from_command(command: str) -> bytes:
    try:
        argv = shlex.split(command)
    except ValueError as e:  # an unbalanced quote
        raise UsageError(f"cannot parse the password command: {e}") from None
    if not argv:
        raise UsageError("the password command is empty")
    try:
        proc = subprocess.run(argv, capture_output=True, check=False)
    except OSError as e:
        raise UsageError(f"cannot run password command: {e.strerror}") from None
    if proc.returncode != 0:
        raise UsageError(f"password command exited with status {proc.returncode}")
    first = proc.stdout.splitlines()[0] if proc.stdout else b""
    if not first:
        what = "printed nothing" if not proc.stdout.strip() else "printed an empty first line"
        raise UsageError(f"password command {what}: {EMPTY}")
    return first


def _prompt(confirm: bool, what: str = "repository password") -> bytes:
    pw = getpass.getpass(f"{what}: ")
    if not pw:
        raise UsageError(EMPTY)
    if confirm and getpass.getpass("repeat password: ") != pw:
        raise UsageError("the passwords do not match")
    return pw.encode()


NEW_PASSWORD_ENV = "CAIRN_NEW_PASSWORD"


def new_password(file: str | None) -> bytes:
    """A new password (for `key add` and `key passwd`): from ``file``, $CAIRN_NEW_PASSWORD,
    or a terminal prompt, asked twice."""
    if file:
        return PasswordSource(file=file).get()
    env = os.environ.get(NEW_PASSWORD_ENV)
    if env is not None:
        if not env:
            raise UsageError(f"{NEW_PASSWORD_ENV} is empty")
        return env.encode()
    if not sys.stdin.isatty():
        raise UsageError(
            f"no new password: use --new-password-file, {NEW_PASSWORD_ENV} or a terminal"
        )
    pw = getpass.getpass("new password: ")
    if not pw:
        raise UsageError(EMPTY)
    if getpass.getpass("repeat new password: ") != pw:
        raise UsageError("the passwords do not match")
    return pw.encode()
