"""cairn mount: browse the repository's snapshots as a read-only file system (FUSE)."""

from __future__ import annotations

from pathlib import Path

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.mount import DEFAULT_CACHE, MountRequest, mount
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.common import filter_options, reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_OK, UsageError
from cairn.core.units import parse_size
from cairn.ui.output import Output
from cairn.ui.usage import store_line


@click.command("mount", cls=CairnCommand)
@repo_options
@reading_options
@filter_options
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option(
    "--cache-size",
    metavar="SIZE",
    default=f"{DEFAULT_CACHE >> 20}MiB",
    show_default=True,
    help="Decrypted file content kept in memory for later reads (e.g. 512M, 1G).",
)
def command(
    spec: RepoSpec, out: Output, flt: SnapshotFilter, mountpoint: Path, cache_size: str
) -> int:
    """Mount the repository's snapshots read-only at MOUNTPOINT, until it is unmounted.

    MOUNTPOINT must be an empty directory. Snapshots appear as snapshots/TIME/, ids/ID/,
    hosts/HOST/TIME/ and tags/TAG/TIME/, each listing with a `latest` link; snapshots taken
    while mounted appear within seconds. Ctrl-C, SIGTERM or `fusermount -u MOUNTPOINT`
    unmounts.

    \b
    Examples:
      cairn mount -r /srv/backup /mnt/backup
      cairn mount -r s3:bucket/repo --host laptop /mnt/backup
    """
    try:
        size = parse_size(cache_size)
    except UsageError as e:
        raise UsageError(f"--cache-size: {e}") from None
    session = open_session(spec)
    request = MountRequest(mountpoint, cache_size=size, filter=flt)
    try:
        mount(
            session,
            request,
            lambda: out.line(
                f"mounting {session.url} at {mountpoint}: Ctrl-C or `fusermount -u` unmounts"
            ),
        )
    finally:  # what the mount's reads cost, once it is gone
        out.line(store_line(session.usage()))
    return EXIT_OK
