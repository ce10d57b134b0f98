"""cairn init: create a repository."""

from __future__ import annotations

import click

from cairn.app.context import RepoSpec, create_repository
from cairn.app.defaults import defaults_for, help_text
from cairn.cli.common import repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.units import format_bytes, parse_size
from cairn.ui.output import Output


@click.command("init", cls=CairnCommand)
@repo_options
@click.option(
    "--pack-size",
    default=None,
    metavar="SIZE",
    help=f"Target pack size ({help_text('pack_size', 'MiB')}).",
)
def command(spec: RepoSpec, out: Output, pack_size: str | None) -> int:
    """Create a new, empty repository.

    \b
    Examples:
      cairn init -r /srv/backup
      cairn init -r s3:s3.amazonaws.com/bucket/cairn --pack-size 64M
    """
    size = parse_size(pack_size) if pack_size else defaults_for(spec.resolved_url()).pack_size
    if not (64 << 10) <= size <= (1 << 30):
        raise click.BadParameter("must be between 64K and 1G", param_hint="--pack-size")
    repo = create_repository(spec, pack_size=size)
    info = {
        "id": repo.config.id,
        "repository": spec.resolved_url(),
        "version": repo.config.version,
        "pack_size": repo.config.pack_size,
    }
    if out.json_mode:
        out.json(info)
    else:
        out.line(f"created repository {repo.config.id} at {info['repository']}")
        out.line(f"format version {repo.config.version}, packs of {format_bytes(size)}")
        out.line("keep the password safe: without it the data cannot be recovered")
    return 0
