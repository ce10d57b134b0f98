"""The ``cairn`` command: subcommands, and the mapping of errors to exit codes."""

from __future__ import annotations

import sys

import click

from cairn import __version__
from cairn.cli import (
    backup,
    cache,
    cat,
    check,
    cost,
    diff,
    dump,
    find,
    forget,
    generate,
    init,
    key,
    ls,
    prune,
    repair,
    restore,
    rewrite,
    run,
    schedule,
    snapshots,
    stats,
    tag,
    version,
)
from cairn.cli.helpformat import CairnGroup
from cairn.core.errors import EXIT_FAILED, CairnError
from cairn.core.memory import tune_malloc
from cairn.ui.output import Output, route_warnings


@click.group(cls=CairnGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cairn")
def cli() -> None:
    """cairn: encrypted, deduplicated backups to S3 and local directories."""


for module in (
    init,
    backup,
    snapshots,
    ls,
    find,
    diff,
    tag,
    rewrite,
    cat,
    stats,
    cost,
    restore,
    dump,
    forget,
    prune,
    check,
    repair,
    key,
    run,
    schedule,
    cache,
    generate,
    version,
):
    cli.add_command(module.command)


def main(argv: list[str] | None = None) -> int:
    route_warnings()
    try:
        rv = cli.main(args=argv, prog_name="cairn", standalone_mode=False)
    except CairnError as e:
        Output().error(str(e))
        return e.exit_code
    except click.exceptions.Abort:
        Output().error("interrupted")
        return 130
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        Output().error("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_FAILED
    return rv if isinstance(rv, int) else 0


def entry() -> None:
    tune_malloc()
    sys.exit(main())
