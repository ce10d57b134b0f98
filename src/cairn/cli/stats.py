"""cairn stats: what the repository holds, or what one snapshot would restore."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.inspect import stats
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import filter_options, reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.units import count, format_bytes
from cairn.ui.output import Output


@click.command("stats", cls=CairnCommand)
@repo_options
@reading_options
@filter_options
@click.argument("snapshot", required=False)
def command(spec: RepoSpec, out: Output, flt: SnapshotFilter, snapshot: str | None) -> int:
    """Repository totals, or with SNAPSHOT the size a restore of it would have.

    \b
    Examples:
      cairn stats -r /srv/backup
      cairn stats -r /srv/backup latest
    """
    session = open_session(spec)
    doc = stats(session, snapshot, flt)
    if snapshot:
        if out.json_mode:
            out.json(doc)
        else:
            out.line(
                f"snapshot {doc['snapshot'][:8]}: {count(doc['files'], 'file')}, {count(doc['dirs'], 'dir')}"
            )
            out.line(f"restore size: {format_bytes(doc['restore_size'])}")
            out.line(
                f"unique data:  {format_bytes(doc['unique_raw'])} in {count(doc['unique_blobs'], 'blob')}"
            )
        return 0
    if out.json_mode:
        out.json(doc)
        return 0
    out.line(f"snapshots:     {doc['snapshots']}")
    out.line(f"packs:         {doc['packs']}")
    for kind in ("data", "tree"):
        raw, stored = format_bytes(doc[f"{kind}_raw"]), format_bytes(doc[f"{kind}_stored"])
        out.line(f"{kind} blobs:    {doc[f'{kind}_blobs']} ({raw} raw, {stored} stored)")
    out.line(
        f"stored total:  {format_bytes(doc['stored_size'])} in {count(doc['objects'], 'object')}"
    )
    out.line(f"compression:   {doc['compression_ratio']:.2f}x")
    return 0
