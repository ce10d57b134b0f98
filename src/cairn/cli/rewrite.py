"""cairn rewrite: snapshots written again without the files that match exclude patterns."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.rewrite import RewriteRequest, rewrite_snapshots
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import filter_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.units import count
from cairn.ui.escape import printable
from cairn.ui.output import Output


@click.command("rewrite", cls=CairnCommand)
@repo_options
@filter_options
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option(
    "-e", "--exclude", "excludes", multiple=True, metavar="PATTERN",
    help="Leave out the files and directories matching PATTERN (as backup's; repeatable).",
)  # fmt: skip
@click.option(
    "--exclude-file", "exclude_files", multiple=True, metavar="FILE",
    help="Read exclude patterns from FILE, one a line (repeatable).",
)  # fmt: skip
@click.option("--forget", is_flag=True, help="Delete the snapshots rewritten.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be left out; write nothing.")
def command(
    spec: RepoSpec,
    out: Output,
    flt: SnapshotFilter,
    ids: tuple[str, ...],
    excludes: tuple[str, ...],
    exclude_files: tuple[str, ...],
    forget: bool,
    dry_run: bool,
) -> int:
    """Write the snapshots ID... (ids, prefixes of ids, or latest; without an ID every
    snapshot that --host, --tag and --path select) again without the entries that match the
    exclude patterns: the same data, new trees, a new id; `original` names the old snapshot,
    which stays unless --forget. A prune then frees what only the old ones used.

    \b
    Examples:
      cairn rewrite latest --exclude '*.iso' --dry-run
      cairn rewrite --tag daily --exclude-file ~/.cairn-excludes --forget
    """
    request = RewriteRequest(
        ids=ids,
        filter=flt,
        excludes=excludes,
        exclude_files=exclude_files,
        forget=forget,
        dry_run=dry_run,
    )
    request.matcher()  # a usage error before the password is asked for
    session = open_session(spec)
    result = rewrite_snapshots(session, request)
    if out.json_mode:
        out.json(
            {
                "dry_run": dry_run,
                "changed": [
                    {
                        "old": r.old.id,
                        "new": r.new_id,
                        "removed": r.removed,
                        "forgotten": r.forgotten,
                    }
                    for r in result.changed
                ],
                "unchanged": [r.old.id for r in result.snapshots if not r.removed],
                "requests": session.usage(),
            }
        )
        return 0
    for r in result.changed:
        new = "(dry run)" if r.new_id is None else r.new_id[:8]
        gone = ", old one removed" if r.forgotten else ""
        removed = count(len(r.removed), "entry", "entries")
        out.line(f"{r.old.id[:8]} -> {new}: {removed} left out{gone}")
        for path in r.removed:
            out.line(f"    {printable(path)}")
    verb = "would rewrite" if dry_run else "rewrote"
    unchanged = len(result.snapshots) - len(result.changed)
    out.line(
        f"{verb} {count(len(result.changed), 'snapshot')}, {unchanged} had nothing to leave out"
    )
    return 0
