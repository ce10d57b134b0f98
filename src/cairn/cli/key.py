"""cairn key list|add|remove|passwd|export|import: the passwords of a repository."""

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


def label_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--user", "username", metavar="NAME", help="User recorded in the key file.")(f)
    return click.option("--host", metavar="NAME", help="Host recorded in the key file.")(f)


@click.group("key", cls=CairnGroup)
def command() -> None:
    """List, add, remove and change the passwords of a repository; export its master keys
    to a key file kept apart, and import it back.

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
@label_options
def add_command(
    spec: RepoSpec,
    out: Output,
    new_password_file: str | None,
    host: str | None,
    username: str | None,
) -> int:
    """Add a password: a new key for the same repository (recording this host and user, or
    --host and --user).

    \b
    Examples:
      cairn key add -r /srv/backup
      cairn key add -r /srv/backup --new-password-file ~/.cairn-new --user me --host laptop
    """
    session = open_session(spec)
    key_id = keys_app.add(session, new_password(new_password_file), host, username)
    if out.json_mode:
        out.json({"id": key_id, "requests": session.usage()})
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
    session = open_session(spec)
    removed = keys_app.remove(session, key_id)
    if out.json_mode:
        out.json({"removed": removed, "requests": session.usage()})
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
        out.json({"id": new, "removed": old, "requests": session.usage()})
    else:
        out.line(f"password changed: added key {new[:8]}, removed key {old[:8]}")
    return 0


@command.command("export")
@repo_options
@new_password_option
@label_options
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
def export_command(
    spec: RepoSpec,
    out: Output,
    new_password_file: str | None,
    host: str | None,
    username: str | None,
    path: str,
) -> int:
    """Write the master keys, under a new password, to FILE (a new file): a key file to keep
    apart, that `cairn key import` adds back to the repository if its keys are lost.

    \b
    Examples:
      cairn key export -r /srv/backup /media/safe/backup.key
      cairn key export -r @main --new-password-file ~/.safe-pw /media/safe/main.key
    """
    session = open_session(spec)
    key_id = keys_app.export(session, new_password(new_password_file), path, host, username)
    if out.json_mode:
        out.json({"file": path, "id": key_id, "requests": session.usage()})
    else:
        out.line(f"wrote key {key_id[:8]} to {path}: keep it apart, with its password")
    return 0


@command.command("import")
@repo_options
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
def import_command(spec: RepoSpec, out: Output, path: str) -> int:
    """Add the key file FILE (from `cairn key export`) to the repository; the password is
    FILE's. No working key of the repository is needed: this recovers one whose keys are
    lost.

    \b
    Examples:
      cairn key import -r /srv/backup /media/safe/backup.key
      cairn key import -r s3://bucket/cairn --password-file ~/.safe-pw /media/safe/main.key
    """
    key_id, added, requests = keys_app.import_key(spec, path)
    if out.json_mode:
        out.json({"id": key_id, "added": added, "requests": requests})
    elif added:
        out.line(f"added key {key_id[:8]} from {path}")
    else:
        out.line(f"the repository holds key {key_id[:8]} already")
    return 0


def _local(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso
