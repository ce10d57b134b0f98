"""cairn ls: list the contents of a snapshot."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.snapshots import SnapshotFilter, list_entries
from cairn.cli.common import filter_options, reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_FAILED
from cairn.ui.escape import printable
from cairn.ui.nodes import long_line, node_json
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress


@click.command("ls", cls=CairnCommand)
@repo_options
@reading_options
@filter_options
@click.argument("snapshot")
@click.argument("path", required=False, default="/")
@click.option("-l", "--long", "long_format", is_flag=True, help="Show mode, owner, size and time.")
def command(
    spec: RepoSpec, out: Output, flt: SnapshotFilter, snapshot: str, path: str, long_format: bool
) -> int:
    """List the files in SNAPSHOT (an id, a prefix of one, or latest), below PATH.

    \b
    Examples:
      cairn ls -r /srv/backup latest
      cairn ls -r /srv/backup -l 1a2b3c4d /home/ann/notes
    """
    session = open_session(spec)
    progress = TerminalProgress(out, "ls")  # warnings about damaged trees, as they come
    try:
        listing = list_entries(session, snapshot, path, progress, flt)
        for p, node in listing.entries():
            if out.json_mode:
                out.json(node_json(p, node))
            elif long_format:
                out.raw_line(long_line(p, node))
            else:
                out.raw_line(printable(p))
    finally:
        progress.close()
    if listing.problems:
        out.error(
            f"{listing.problems} problems in the snapshot's trees: see `cairn check`", EXIT_FAILED
        )
        return EXIT_FAILED
    return 0
