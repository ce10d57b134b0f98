"""cairn init: create a repository."""

from __future__ import annotations

import os

import click

from cairn.app.context import (
    ObjectLockRequest,
    RepoSpec,
    RetentionRule,
    create_repository,
    open_session,
)
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
    help="Share the chunker parameters and blob ids of the source repository (for `cairn copy`).",
)
@click.option(
    "--object-lock",
    "lock_days",
    type=click.IntRange(1, 36500),
    default=None,
    metavar="DAYS",
    help="Lock every object for at least DAYS days (S3 Object Lock): not even these "
    "credentials can delete a snapshot's data before its lock ends. S3 only; a bucket init "
    "creates gets Object Lock, an existing one must have it.",
)
@click.option(
    "--lock-mode",
    type=click.Choice(["governance", "compliance"]),
    default=None,
    help="With --object-lock (default governance): governance (a principal allowed to bypass governance retention "
    "may still delete) or compliance (no one can, not even the account's root).",
)
@click.option(
    "--lifecycle/--no-lifecycle",
    default=None,
    help="With --object-lock, on a bucket init creates (default: on): add the lifecycle rule that expires "
    "deleted (noncurrent) versions once their lock ended.",
)
@from_repo_options
def command(
    spec: RepoSpec,
    out: Output,
    pack_size: str | None,
    lock_days: int | None,
    lock_mode: str | None,
    lifecycle: bool | None,
    copy_chunker_params: bool,
    source: SourceFlags,
) -> int:
    """Create a new, empty repository.

    \b
    Examples:
      cairn init -r /srv/backup
      cairn init -r s3:s3.amazonaws.com/bucket/cairn --pack-size 64M
      cairn init -r s3:s3.amazonaws.com/offsite/cairn --copy-chunker-params --from-repo /srv/backup
      cairn init -r s3://new-bucket/cairn --object-lock 30

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
    lock = None
    if lock_days is None and (lock_mode is not None or lifecycle is not None):
        flag = "--lock-mode" if lock_mode is not None else "--lifecycle/--no-lifecycle"
        raise click.UsageError(f"{flag} applies only with --object-lock")
    if lock_days is not None:
        lock_mode = lock_mode or "governance"
        rule = RetentionRule(lock_days, lock_mode.upper())
        lock = ObjectLockRequest(rule, lifecycle is not False)
    like = open_session(source.spec(spec)).repo if copy_chunker_params else None
    repo = create_repository(spec, pack_size=size, like=like, object_lock=lock)
    info: dict[str, object] = {
        "id": repo.config.id,
        "repository": spec.resolved_url(),
        "version": repo.config.version,
        "pack_size": repo.config.pack_size,
    }
    if lock is not None:
        info["object_lock"] = {"days": lock.rule.days, "mode": lock_mode}
    if out.json_mode:
        out.json(info)
    else:
        out.line(f"created repository {repo.config.id} at {info['repository']}")
        out.line(f"format version {repo.config.version}, packs of {format_bytes(size)}")
        if lock is not None:
            out.line(
                f"object lock: every object locked {lock.rule.days} days from its writing "
                f"({lock_mode} mode)"
            )
        out.line("keep the password safe: without it the data cannot be recovered")
    return 0
