"""cairn find: entries matching patterns, across snapshots."""

from __future__ import annotations

from datetime import datetime

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.find import FindRequest, find
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import filter_options, reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_FAILED
from cairn.core.units import count
from cairn.ui.escape import printable
from cairn.ui.nodes import long_line, node_json
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress

TIME = click.DateTime(["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"])


@click.command("find", cls=CairnCommand)
@repo_options
@reading_options
@filter_options
@click.argument("patterns", nargs=-1, required=True, metavar="PATTERN...")
@click.option(
    "-s",
    "--snapshot",
    "snapshots",
    multiple=True,
    metavar="ID",
    help="Search only this snapshot (an id, a prefix of one, or latest; repeatable).",
)
@click.option(
    "--newest", type=TIME, metavar="TIME", help="Only entries modified at or before TIME."
)
@click.option("--oldest", type=TIME, metavar="TIME", help="Only entries modified at or after TIME.")
def command(
    spec: RepoSpec,
    out: Output,
    flt: SnapshotFilter,
    patterns: tuple[str, ...],
    snapshots: tuple[str, ...],
    newest: datetime | None,
    oldest: datetime | None,
) -> int:
    """Find the entries matching any PATTERN in the snapshots (all of them, or those chosen by
    --snapshot and the filter options). A pattern without '/' is matched against the entry's
    name (`*.pdf`), one with '/' against its path (`/home/*/notes/**`). TIME is local time,
    as `2026-11-22`, `2026-11-22 14:30` or `2026-11-22 14:30:05`.

    \b
    Examples:
      cairn find -r /srv/backup '*.pdf'
      cairn find -r /srv/backup --newest 2026-11-22 '/home/*/notes/**'
    """
    session = open_session(spec)
    progress = TerminalProgress(out, "find")  # warnings about damaged trees, as they come
    request = FindRequest(patterns, snapshots, flt, newest=newest, oldest=oldest)
    docs = []
    hits = 0
    try:
        finding = find(session, request, progress)
        for found in finding.results():
            snap = found.snapshot
            hits += len(found.entries)
            if out.json_mode:
                docs.append(
                    {
                        "snapshot": snap.id,
                        "hits": len(found.entries),
                        "matches": [node_json(p, n) for p, n in found.entries],
                    }
                )
                continue
            if not found.entries:
                continue
            when = snap.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
            out.raw_line(
                f"Found matching entries in snapshot {snap.id[:8]} from {when}"
                f" ({printable(snap.host)})"
            )
            for path, node in found.entries:
                out.raw_line(long_line(path, node))
            out.raw_line("")
    finally:
        progress.close()
    if out.json_mode:
        out.json(docs)
    else:
        searched = count(len(finding.snapshots), "snapshot")
        out.line(f"{count(hits, 'match', 'matches')} in {searched}")
    if finding.problems:
        out.error(
            f"{finding.problems} problems in the snapshots' trees: see `cairn check`", EXIT_FAILED
        )
        return EXIT_FAILED
    return 0
