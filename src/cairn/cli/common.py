"""Options shared by commands, and the objects they build."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from cairn.app.context import RepoSpec
from cairn.app.passwords import PasswordSource
from cairn.ops.snapshots import SnapshotFilter
from cairn.ui.output import Output


def repo_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--repo, password sources, cache and output options, turned into ``spec`` and ``out``."""

    @click.option("-r", "--repo", "repo", metavar="URL", help="Repository (or $CAIRN_REPOSITORY).")
    @click.option("--password-file", metavar="FILE", help="Read the password from FILE.")
    @click.option("--password-command", metavar="CMD", help="Run CMD and use its output.")
    @click.option("--cache-dir", metavar="DIR", help="Local cache directory.")
    @click.option("--no-cache", is_flag=True, help="Use no local cache.")
    @click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
    @click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
    @functools.wraps(f)
    def wrapper(
        repo: str | None,
        password_file: str | None,
        password_command: str | None,
        cache_dir: str | None,
        no_cache: bool,
        json_mode: bool,
        quiet: bool,
        **kwargs: Any,
    ) -> Any:
        spec = RepoSpec(
            url=repo,
            password=PasswordSource(file=password_file, command=password_command),
            cache_dir=cache_dir,
            use_cache=not no_cache,
        )
        return f(spec=spec, out=Output(json_mode=json_mode, quiet=quiet), **kwargs)

    return wrapper


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--host, --tag, --path, turned into ``flt``."""

    @click.option("--host", "hosts", multiple=True, help="Only snapshots of this host.")
    @click.option(
        "--tag", "tags", multiple=True, help="Only snapshots with these tags (a,b: both)."
    )
    @click.option("--path", "paths", multiple=True, help="Only snapshots that include this path.")
    @functools.wraps(f)
    def wrapper(
        hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...], **kw: Any
    ) -> Any:
        return f(flt=SnapshotFilter(hosts=hosts, tags=tags, paths=paths), **kw)

    return wrapper
