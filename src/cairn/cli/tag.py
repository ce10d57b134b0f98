"""cairn tag: add, remove or set the tags of snapshots."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.snapshots import SnapshotFilter
from cairn.app.tag import TagRequest, tag
from cairn.cli.common import filter_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.units import count
from cairn.ui.escape import printable
from cairn.ui.output import Output


@click.command("tag", cls=CairnCommand)
@repo_options
@filter_options
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--add", multiple=True, metavar="TAG[,TAG]", help="Add these tags (repeatable).")
@click.option(
    "--remove", multiple=True, metavar="TAG[,TAG]", help="Remove these tags (repeatable)."
)
@click.option(
    "--set",
    "set_",
    multiple=True,
    metavar="TAG[,TAG]",
    help="Replace all tags with these (repeatable; --set '' removes every tag).",
)
@click.option("-n", "--dry-run", is_flag=True, help="Show what would change; write nothing.")
def command(
    spec: RepoSpec,
    out: Output,
    flt: SnapshotFilter,
    ids: tuple[str, ...],
    add: tuple[str, ...],
    remove: tuple[str, ...],
    set_: tuple[str, ...],
    dry_run: bool,
) -> int:
    """Change the tags of the snapshots ID... (ids, prefixes of ids, or latest), or without
    an ID of every snapshot that --host, --tag and --path select. A changed snapshot is
    written anew and the old object deleted, so its id changes (as in restic).

    \b
    Examples:
      cairn tag -r /srv/backup --add keep 1a2b3c4d
      cairn tag -r /srv/backup --host laptop --set weekly
    """
    request = TagRequest(
        ids=ids,
        filter=flt,
        add=add,
        remove=remove,
        set=set_ if set_ else None,
        dry_run=dry_run,
    )
    request.change()  # a usage error before the password is asked for
    session = open_session(spec)
    result = tag(session, request)
    if out.json_mode:
        out.json(
            {
                "dry_run": dry_run,
                "changed": [
                    {"old": r.old.id, "new": r.new_id, "tags": r.tags} for r in result.changed
                ],
                "unchanged": [r.old.id for r in result.snapshots if not r.changed],
                "requests": session.usage(),
            }
        )
        return 0
    for r in result.changed:
        tags = ",".join(printable(t) for t in r.tags) or "(no tags)"
        new = "(dry run)" if r.new_id is None else r.new_id[:8]
        out.line(f"{r.old.id[:8]} -> {new}  {tags}")
    changed = count(len(result.changed), "snapshot")
    verb = "would change" if dry_run else "changed"
    out.line(f"{verb} {changed}, {len(result.snapshots) - len(result.changed)} already so")
    return 0
