"""cairn snapshots: list snapshots."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.snapshots import Snapshot, SnapshotFilter, list_snapshots
from cairn.cli.common import filter_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.units import count, format_bytes
from cairn.ui.escape import printable
from cairn.ui.output import Output


@click.command("snapshots", cls=CairnCommand)
@repo_options
@filter_options
@click.option(
    "--latest",
    type=click.IntRange(1),
    metavar="N",
    help="Only the N newest snapshots of each host and set of paths.",
)
@click.option(
    "-c", "--compact", is_flag=True, help="One line per snapshot: id, time, host and tags."
)
def command(
    spec: RepoSpec, out: Output, flt: SnapshotFilter, latest: int | None, compact: bool
) -> int:
    """List the snapshots in the repository, oldest first.

    \b
    Examples:
      cairn snapshots -r /srv/backup
      cairn snapshots -r /srv/backup --host laptop --latest 3
    """
    session = open_session(spec)
    snaps = list_snapshots(session, flt, latest=latest)
    if out.json_mode:
        out.json([s.to_json() for s in snaps])
        return 0
    if compact:
        _compact(out, snaps)
    else:
        rows = [
            [
                s.id[:8],
                s.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                printable(s.host),
                ",".join(printable(t) for t in s.tags),
                "\n".join(printable(p) for p in s.paths),
                format_bytes(s.summary.bytes_total),
            ]
            for s in snaps
        ]
        out.table(["ID", "Time", "Host", "Tags", "Paths", "Size"], rows)
    out.line(count(len(snaps), "snapshot"))
    return 0


def _compact(out: Output, snaps: list[Snapshot]) -> None:
    """Plain aligned lines, never wrapped (a long host or tag list makes a long line)."""
    rows = [
        (
            s.id[:8],
            s.time.astimezone().strftime("%Y-%m-%d %H:%M"),
            printable(s.host),
            ",".join(printable(t) for t in s.tags),
        )
        for s in snaps
    ]
    width = max((len(r[2]) for r in rows), default=0)
    width = max(width, len("Host"))
    out.line(f"{'ID':8}  {'Time':16}  {'Host':{width}}  Tags".rstrip())
    for sid, when, host, tags in rows:
        out.raw_line(f"{sid}  {when}  {host:{width}}  {tags}".rstrip())
