"""cairn snapshots: list snapshots."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.snapshots import SnapshotFilter, list_snapshots
from cairn.cli.common import filter_options, repo_options
from cairn.core.units import count, format_bytes
from cairn.ui.escape import printable
from cairn.ui.output import Output


@click.command("snapshots")
@repo_options
@filter_options
def command(spec: RepoSpec, out: Output, flt: SnapshotFilter) -> int:
    """List the snapshots in the repository, oldest first."""
    session = open_session(spec)
    snaps = list_snapshots(session, flt)
    if out.json_mode:
        out.json([s.to_json() for s in snaps])
        return 0
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
    out.line(f"{count(len(snaps), 'snapshot')}")
    return 0
