"""How ``--help`` is laid out: a command's own options first, the repository and store options
every command shares after them, under their own heading."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

REPOSITORY_HEADING = "Repository options"


class RepositoryOption(click.Option):
    """An option of the repository and its store (``cli.common.repo_options``), the same for
    every command: listed after the command's own."""


class OutputOption(click.Option):
    """--json and --quiet of ``cli.common.repo_options``: the command's, listed after the
    options particular to it."""


def is_repository_option(param: click.Parameter) -> bool:
    return isinstance(param, RepositoryOption)


def option_records(
    command: click.Command, ctx: click.Context
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The help lines (names, text) of the command's own options, and of the repository's.
    Arguments are in the usage line only."""
    own, output, shared = [], [], []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record is None:
            continue
        if is_repository_option(param):
            shared.append(record)
        elif isinstance(param, OutputOption):
            output.append(record)
        else:
            own.append(record)
    help_records = [r for r in own if r[0] in _help_names(ctx)]
    own = [r for r in own if r not in help_records]
    return own + output + help_records, shared


def _help_names(ctx: click.Context) -> set[str]:
    return {", ".join(ctx.help_option_names), *ctx.help_option_names}


class CairnCommand(click.Command):
    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own, shared = option_records(self, ctx)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        if shared:
            with formatter.section(REPOSITORY_HEADING):
                formatter.write_dl(shared)


class CairnGroup(click.Group):
    """A group whose subcommands (``@group.command``) lay out their help as above."""

    command_class = CairnCommand
    group_class = type  # subgroups are CairnGroups too


def output_option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    return click.option(*decls, cls=OutputOption, **attrs)


def repository_option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    """``click.option``, for an option listed under the repository heading."""
    return click.option(*decls, cls=RepositoryOption, **attrs)
