"""cairn init: create a repository."""

from __future__ import annotations

import os

import click

from cairn.app.context import RepoSpec, create_repository, open_session
from cairn.app.defaults import defaults_for, help_text
from cairn.cli.common import SourceFlags, from_repo_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import UsageError
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
@click.option(
    "--copy-chunker-params",
    is_flag=True,
    help="Share the chunker parameters and blob ids of --from-repo (for `cairn copy`).",
)
@from_repo_options
def command(
    spec: RepoSpec,
    out: Output,
    pack_size: str | None,
    copy_chunker_params: bool,
    source: SourceFlags,
) -> int:
    """Create a new, empty repository.

    \b
    Examples:
      cairn init -r /srv/backup
      cairn init -r s3:s3.amazonaws.com/bucket/cairn --pack-size 64M
      cairn init -r s3:s3.amazonaws.com/offsite/cairn --copy-chunker-params --from-repo /srv/backup

    With --copy-chunker-params, the new repository cuts files into chunks as --from-repo does
    and gives them the same ids: `cairn copy` between the two then reads and sends only what
    the other lacks, and backups to either deduplicate against the copies. The keys and
    passwords stay the repository's own.
    """
    size = parse_size(pack_size) if pack_size else defaults_for(spec.resolved_url()).pack_size
    if not (64 << 10) <= size <= (1 << 30):
        raise click.BadParameter("must be between 64K and 1G", param_hint="--pack-size")
    if copy_chunker_params != (source.url is not None or "CAIRN_FROM_REPOSITORY" in os.environ):
        if copy_chunker_params:
            raise UsageError("--copy-chunker-params needs --from-repo (the repository to share)")
        raise UsageError("--from-repo is for --copy-chunker-params")
    like = open_session(source.spec(spec)).repo if copy_chunker_params else None
    repo = create_repository(spec, pack_size=size, like=like)
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
