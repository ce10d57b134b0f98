"""A group that imports a subcommand's module only when that subcommand runs.

Every command's module pulls in the use cases it calls and what they stand on; importing them
all cost every command (a backup, ``cairn snapshots``, ``cairn --help``) the import of all the
others. The group knows each subcommand by name, module and summary (the first sentence of its
help), and lists them in ``--help`` from that table without importing any.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import click

from cairn.cli.helpformat import CairnGroup


class LazyCommand(NamedTuple):
    module: str  # defines ``command``
    summary: str  # the first sentence of its help, as ``--help`` lists it


class LazyGroup(CairnGroup):
    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module = importlib.import_module(self.lazy[cmd_name].module)
            self.add_command(module.command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as e:
            # click suggests close names among the commands loaded: suggest among all
            raise click.exceptions.NoSuchCommand(
                e.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click lists the commands, from the summaries in the table."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(name, self.listed_help(name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def listed_help(self, name: str, limit: int) -> str:
        if name in self.lazy:
            # click shortens the first sentence of a help to fit: the same from the summary
            return click.Command(name, help=self.lazy[name].summary).get_short_help_str(limit)
        command = self.commands[name]
        return command.get_short_help_str(limit)
