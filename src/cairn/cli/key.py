"""cairn key list|add|remove|passwd: the passwords of a repository."""

from __future__ import annotations

from datetime import datetime

import click

from cairn.app import keys as keys_app
from cairn.app.context import RepoSpec, open_session
from cairn.app.passwords import NEW_PASSWORD_ENV, new_password
from cairn.cli.common import repo_options
from cairn.cli.helpformat import CairnGroup
from cairn.core.units import count
from cairn.ui.escape import printable
from cairn.ui.output import Output

new_password_option = click.option(
    "--new-password-file",
    metavar="FILE",
    help=f"Read the new password from FILE (else ${NEW_PASSWORD_ENV} or a prompt).",
)


@click.group("key", cls=CairnGroup)
def command() -> None:
    """List, add, remove and change the passwords of a repository.

    Every password unlocks the same master keys, so adding or changing one rewrites nothing
    but the small key files under keys/."""


@command.command("list")
@repo_options
def list_command(spec: RepoSpec, out: Output) -> int:
    """List the keys; * marks the one that opened the repository.

    \b
    Examples:
      cairn key list -r /srv/backup
    """
    keys = keys_app.list_keys(open_session(spec))
    if out.json_mode:
        out.json([k.to_json() for k in keys])
        return 0
    rows = [
        [
            ("*" if k.current else " ") + k.id[:8],
            _local(k.created),
            printable(k.host),
            printable(k.username),
            f"damaged: {k.error}" if k.error else "",
        ]
        for k in keys
    ]
    out.table(["ID", "Created", "Host", "User", "Note"], rows)
    out.line(f"{count(len(keys), 'key')}")
    return 0


@command.command("add")
@repo_options
@new_password_option
def add_command(spec: RepoSpec, out: Output, new_password_file: str | None) -> int:
    """Add a password: a new key for the same repository.

    \b
    Examples:
      cairn key add -r /srv/backup
      cairn key add -r /srv/backup --new-password-file ~/.cairn-new
    """
    session = open_session(spec)
    key_id = keys_app.add(session, new_password(new_password_file))
    if out.json_mode:
        out.json({"id": key_id})
    else:
        out.line(f"added key {key_id[:8]}")
    return 0


@command.command("remove")
@repo_options
@click.argument("key_id", metavar="ID")
def remove_command(spec: RepoSpec, out: Output, key_id: str) -> int:
    """Remove the key ID (or a unique prefix); not the last key, nor the one in use.

    \b
    Examples:
      cairn key remove -r /srv/backup 1a2b3c4d
    """
    removed = keys_app.remove(open_session(spec), key_id)
    if out.json_mode:
        out.json({"removed": removed})
    else:
        out.line(f"removed key {removed[:8]}")
    return 0


@command.command("passwd")
@repo_options
@new_password_option
def passwd_command(spec: RepoSpec, out: Output, new_password_file: str | None) -> int:
    """Change the password in use: add a key for the new one, then remove the current key.

    \b
    Examples:
      cairn key passwd -r /srv/backup
    """
    session = open_session(spec)
    new, old = keys_app.change_password(session, new_password(new_password_file))
    if out.json_mode:
        out.json({"id": new, "removed": old})
    else:
        out.line(f"password changed: added key {new[:8]}, removed key {old[:8]}")
    return 0


def _local(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso
