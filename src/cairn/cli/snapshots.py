"""cairn snapshots: list snapshots."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.snapshots import (
    GroupKey,
    Snapshot,
    SnapshotFilter,
    group_snapshots,
    list_snapshots,
)
from cairn.cli.common import filter_options, reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.units import count, format_bytes
from cairn.ui.escape import printable
from cairn.ui.output import Output


@click.command("snapshots", cls=CairnCommand)
@repo_options
@reading_options
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
@click.option(
    "--group-by",
    metavar="FIELDS",
    help="List in groups of the same host, paths, tags (any of them, comma-separated).",
)
def command(
    spec: RepoSpec,
    out: Output,
    flt: SnapshotFilter,
    latest: int | None,
    compact: bool,
    group_by: str | None,
) -> int:
    """List the snapshots in the repository, oldest first.

    The table fits the terminal (or $COLUMNS): hosts, tags and paths too long for it are
    shortened in the middle, with an ellipsis (--json or --compact show them whole).

    \b
    Examples:
      cairn snapshots -r /srv/backup
      cairn snapshots -r /srv/backup --host laptop --latest 3
      cairn snapshots -r /srv/backup --group-by host,paths --compact
    """
    session = open_session(spec)
    snaps = list_snapshots(session, flt, latest=latest)
    groups = group_snapshots(snaps, group_by) if group_by is not None else [(None, snaps)]
    if out.json_mode:
        if group_by is None:
            out.json([s.to_json() for s in snaps])
        else:
            out.json(
                [
                    {"group_key": _key_json(k), "snapshots": [s.to_json() for s in g]}
                    for k, g in groups
                ]
            )
        return 0
    for key, group in groups:
        if key is not None:
            out.raw_line(f"{key.describe()}:")
        if compact:
            _compact(out, group)
        else:
            _table(out, group)
        if key is not None:
            out.raw_line("")
    out.line(count(len(snaps), "snapshot"))
    return 0


def _key_json(key: GroupKey | None) -> dict[str, object]:
    assert key is not None
    return {
        "host": key.host,
        "paths": list(key.paths) if key.paths is not None else None,
        "tags": list(key.tags) if key.tags is not None else None,
    }


def _table(out: Output, snaps: list[Snapshot]) -> None:
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
    columns = ["ID", "Time", "Host", "Tags", "Paths", "Size"]
    out.table(columns, rows, shorten=("Host", "Tags", "Paths"))


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
