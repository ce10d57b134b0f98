"""cairn diff: what changed between two snapshots."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.diff import METADATA, Change, diff
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import filter_options, reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_FAILED
from cairn.core.units import format_bytes
from cairn.ui.escape import printable
from cairn.ui.output import Output, show_path
from cairn.ui.progress import TerminalProgress


@click.command("diff", cls=CairnCommand)
@repo_options
@reading_options
@filter_options
@click.argument("old")
@click.argument("new")
@click.option("--metadata", is_flag=True, help="Also list entries whose metadata alone changed.")
def command(
    spec: RepoSpec, out: Output, flt: SnapshotFilter, old: str, new: str, metadata: bool
) -> int:
    """Show what changed from snapshot OLD to NEW (ids, prefixes of ids, or latest): + added,
    - removed, M modified (content), T type changed, U metadata only (mode, owner, mtime,
    xattrs; listed with --metadata).

    \b
    Examples:
      cairn diff -r /srv/backup 1a2b3c4d latest
      cairn diff -r /srv/backup --metadata 1a2b3c4d 5e6f7a8b
    """
    session = open_session(spec)
    progress = TerminalProgress(out, "diff")  # warnings about damaged trees, as they come
    try:
        result = diff(session, old, new, progress, flt)
        out.line(f"comparing snapshot {result.old.id[:8]} to {result.new.id[:8]}:")
        out.line("")
        for change in result.changes():
            if change.kind == METADATA and not metadata:
                continue
            if out.json_mode:
                out.json(
                    {
                        "message_type": "change",
                        "path": show_path(_shown(change)),
                        "modifier": change.kind,
                    }
                )
            else:
                out.raw_line(f"{change.kind}    {printable(_shown(change))}")
    finally:
        progress.close()
    c = result.counts
    added, removed = result.bytes_added(), result.bytes_removed()
    if out.json_mode:
        out.json(
            {
                "message_type": "statistics",
                "source_snapshot": result.old.id,
                "target_snapshot": result.new.id,
                "added": {"files": c.files_added, "dirs": c.dirs_added, "others": c.others_added},
                "removed": {
                    "files": c.files_removed,
                    "dirs": c.dirs_removed,
                    "others": c.others_removed,
                },
                "modified": {"files": c.files_modified, "others": c.others_modified},
                "type_changed": c.type_changed,
                "metadata_changed": c.metadata_changed,
                "bytes_added": added,
                "bytes_removed": removed,
            }
        )
    else:
        out.line("")
        out.line(
            f"Files:   {c.files_added:6} new, {c.files_removed:6} removed, "
            f"{c.files_modified:6} modified"
        )
        out.line(f"Dirs:    {c.dirs_added:6} new, {c.dirs_removed:6} removed")
        out.line(
            f"Others:  {c.others_added:6} new, {c.others_removed:6} removed, "
            f"{c.others_modified:6} modified"
        )
        out.line(f"Type changed: {c.type_changed}, metadata only: {c.metadata_changed}")
        out.line(f"Added:   {format_bytes(added)}")
        out.line(f"Removed: {format_bytes(removed)}")
    if result.problems:
        out.error(
            f"{result.problems} problems in the snapshots' trees: see `cairn check`", EXIT_FAILED
        )
        return EXIT_FAILED
    return 0


def _shown(change: Change) -> bytes:
    """The path, with a trailing '/' for a directory (as restic shows them)."""
    node = change.new if change.new is not None else change.old
    return change.path + b"/" if node is not None and node.type == "dir" else change.path
