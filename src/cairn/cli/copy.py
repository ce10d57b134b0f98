"""cairn copy: copy snapshots from another repository into this one."""

from __future__ import annotations

from typing import Any

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.copy import CopyRequest, CopyResult, copy
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import SourceFlags, filter_options, from_repo_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.units import count, format_bytes
from cairn.ui.money import money
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress


@click.command("copy", cls=CairnCommand)
@repo_options
@filter_options
@from_repo_options
@click.argument("ids", nargs=-1, metavar="[ID]...")
def command(
    spec: RepoSpec,
    out: Output,
    flt: SnapshotFilter,
    ids: tuple[str, ...],
    source: SourceFlags,
) -> int:
    """Copy snapshots from the repository --from-repo into this one (--repo): the
    snapshots ID... (ids, prefixes of ids, or latest), or without an ID every snapshot that
    --host, --tag and --path select. The two may have different passwords and stores; only
    the data this repository lacks is read and sent, and a snapshot copied before is not
    copied again. An interrupted copy resumes where it stopped.

    A repository made with `cairn init --copy-chunker-params --from-repo SRC` gives data the
    same ids as SRC, so copies skip what it has without reading it, and its own backups
    deduplicate against the copies.

    \b
    Examples:
      cairn copy --from-repo /srv/backup -r s3:s3.eu-west-1.amazonaws.com/offsite/cairn
      cairn copy --from-repo @local -r @offsite --host laptop latest
    """
    request = CopyRequest(source.spec(spec), ids, flt)
    session = open_session(spec)
    progress = TerminalProgress(out, "copy")
    try:
        result = copy(session, request, progress)
    finally:
        progress.close()
    if out.json_mode:
        out.json(_json(result))
        return 0
    for c in result.snapshots:
        when = f"{c.source.time:%Y-%m-%d %H:%M:%S}"
        if c.copy is None:
            out.line(f"{c.source.id[:8]} {when}  there already as {c.present[:8]}")  # type: ignore[index]
            continue
        t = c.totals
        out.line(
            f"{c.source.id[:8]} {when}  copied as {c.copy.id[:8]}: "
            f"{count(t.data_blobs + t.tree_blobs, 'blob')} sent ({format_bytes(t.bytes_stored)})"
        )
        for problem in c.problems:
            out.warning(f"{c.source.id[:8]}: {problem}")
    t = result.totals
    out.line(
        f"copied {count(len(result.copied), 'snapshot')} "
        f"({len(result.snapshots) - len(result.copied)} there already): "
        f"read {format_bytes(t.bytes_read)} in {count(t.reads, 'request')}, "
        f"sent {format_bytes(t.bytes_stored)}"
    )
    out.line(
        f"requests: source {_requests(result.source_requests)}; "
        f"destination {_requests(result.requests)}"
    )
    if result.cost is not None:
        out.line(f"cost: {money(result.cost['cost'])}")
    return 0


def _requests(usage: dict[str, int]) -> str:
    kinds = ("get", "put", "head", "list", "delete")
    return ", ".join(f"{usage.get(k, 0)} {k.upper()}" for k in kinds if usage.get(k)) or "none"


def _json(result: CopyResult) -> dict[str, Any]:
    return {
        "source": result.source,
        "snapshots": [
            {
                "source": c.source.id,
                "copy": c.copy.id if c.copy is not None else None,
                "present": c.present,
                "time": c.source.time.isoformat(),
                **vars(c.totals),
                "problems": c.problems,
            }
            for c in result.snapshots
        ],
        "copied": len(result.copied),
        **vars(result.totals),
        "source_requests": result.source_requests,
        "requests": result.requests,
        "cost": result.cost,
    }
