"""Manual pages (troff, section 1) rendered from the click commands: one per command and
subcommand, the options of the command first and the repository options in a section of
their own, as ``--help`` shows them."""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Iterator
from pathlib import Path

import click

from cairn.cli.helpformat import REPOSITORY_HEADING, option_records


def escape(text: str) -> str:
    """Text as troff shows it literally: backslashes and hyphens escaped, no line taken for a
    request (a leading dot or quote)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in text.split("\n"))


def _paragraphs(help_text: str) -> Iterator[str]:
    """The help of a command as troff paragraphs; a paragraph that starts with click's ``\\b``
    keeps its line breaks and indentation."""
    for block in inspect.cleandoc(help_text).split("\n\n"):
        lines = block.strip("\n").split("\n")
        if lines[0].strip() == "\b":
            yield ".PP\n.nf\n" + escape("\n".join(lines[1:])) + "\n.fi"
        else:
            yield ".PP\n" + escape(" ".join(ln.strip() for ln in lines))


def _options(records: list[tuple[str, str]]) -> Iterator[str]:
    for names, help_text in records:
        yield f".TP\n\\fB{escape(names)}\\fR\n{escape(help_text) if help_text else ''}".rstrip()


def _date() -> str:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def page_name(ctx: click.Context) -> str:
    return ctx.command_path.replace(" ", "-")


def render(ctx: click.Context, version: str) -> str:
    cmd = ctx.command
    name = page_name(ctx)
    summary = cmd.get_short_help_str(limit=200).removeprefix(f"{name}: ") or name
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    out = [
        f'.TH "{escape(name.upper())}" "1" "{_date()}" "cairn {escape(version)}" "cairn manual"',
        ".SH NAME",
        f"{escape(name)} \\- {escape(summary)}",
        ".SH SYNOPSIS",
        f".B {escape(ctx.command_path)}",
        escape(usage),
    ]
    if cmd.help:
        out.append(".SH DESCRIPTION")
        out.extend(_paragraphs(cmd.help))
    own, shared = option_records(cmd, ctx)
    if own:
        out.append(".SH OPTIONS")
        out.extend(_options(own))
    if shared:
        out.append(f".SH {REPOSITORY_HEADING.upper()}")
        out.extend(_options(shared))
    subcommands = _subcommands(ctx)
    if subcommands:
        out.append(".SH COMMANDS")
        for sub in subcommands:
            out.append(f".TP\n\\fB{escape(sub.info_name or '')}\\fR")
            out.append(f"{escape(sub.command.get_short_help_str(limit=200))}")
            out.append(f"See \\fB{escape(page_name(sub))}\\fR(1).")
    if ctx.parent is not None:
        out.append(".SH SEE ALSO")
        out.append(f"\\fB{escape(page_name(ctx.find_root()))}\\fR(1)")
    return "\n".join(out) + "\n"


def _subcommands(ctx: click.Context) -> list[click.Context]:
    cmd = ctx.command
    if not isinstance(cmd, click.Group):
        return []
    subs = []
    for sub_name in cmd.list_commands(ctx):
        sub = cmd.get_command(ctx, sub_name)
        if sub is not None and not sub.hidden:
            subs.append(click.Context(sub, info_name=sub_name, parent=ctx))
    return subs


def pages(ctx: click.Context) -> Iterator[click.Context]:
    """``ctx`` and every command below it."""
    yield ctx
    for sub in _subcommands(ctx):
        yield from pages(sub)


def write_pages(root: click.Context, directory: Path, version: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for ctx in pages(root):
        path = directory / f"{page_name(ctx)}.1"
        path.write_text(render(ctx, version))
        written.append(path)
    return written
