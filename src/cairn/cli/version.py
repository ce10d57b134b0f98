"""cairn version: the version of cairn, of Python, and the platform."""

from __future__ import annotations

import platform
import sys

import click

from cairn import __version__
from cairn.cli.helpformat import CairnCommand
from cairn.ui.output import Output


@click.command("version", cls=CairnCommand)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
def command(json_mode: bool) -> int:
    """Show the version of cairn, of Python, and the platform.

    `cairn --version` shows cairn's only; this adds what a bug report needs.

    \b
    Examples:
      cairn version
      cairn version --json
    """
    info = {
        "version": __version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": sys.platform,
        "machine": platform.machine(),
        "system": platform.platform(),
    }
    out = Output(json_mode=json_mode)
    if json_mode:
        out.json(info)
    else:
        out.line(
            f"cairn {info['version']} on {info['python_implementation']} {info['python']}, "
            f"{info['system']} ({info['machine']})"
        )
    return 0
