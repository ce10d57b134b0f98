"""The ``cairn`` command: subcommands, and the mapping of errors to exit codes."""

from __future__ import annotations

import gc
import sys

import click

from cairn import __version__
from cairn.cli import (
    backup,
    cache,
    cat,
    check,
    copy,
    cost,
    diff,
    dump,
    find,
    forget,
    generate,
    init,
    key,
    ls,
    mirror,
    mount,
    prune,
    repair,
    restore,
    rewrite,
    run,
    schedule,
    serve,
    snapshots,
    stats,
    tag,
    version,
)
from cairn.cli.helpformat import CairnGroup
from cairn.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, CairnError, Interrupted
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
    mount,
    mirror,
    copy,
    forget,
    prune,
    check,
    repair,
    key,
    run,
    schedule,
    serve,
    cache,
    generate,
    version,
):
    cli.add_command(module.command)


def main(argv: list[str] | None = None) -> int:
    route_warnings()
    args = sys.argv[1:] if argv is None else argv
    out = Output(json_mode=_wants_json(args))
    try:
        rv = cli.main(args=args, prog_name="cairn", standalone_mode=False)
    except CairnError as e:
        out.error(str(e), e.exit_code)
        return e.exit_code
    except click.exceptions.Abort as e:  # click's name for a KeyboardInterrupt
        cause = e.__cause__
        if isinstance(cause, Interrupted):
            out.error(str(cause), cause.exit_code)
            return cause.exit_code
        out.error("interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        if out.json_mode:
            out.error(e.format_message(), e.exit_code)
        else:
            e.show()
        return e.exit_code
    except Interrupted as e:
        out.error(str(e), e.exit_code)
        return e.exit_code
    except KeyboardInterrupt:
        out.error("interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
    return rv if isinstance(rv, int) else 0


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON (--json before any ``--``): errors are then one
    JSON object on stderr too, whatever stage they come from."""
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


def entry() -> None:
    tune_malloc()
    code = main()
    # The command is done (its output written, its files closed, its lock removed): what is
    # left is the interpreter's own teardown, whose collection of the objects still alive (a
    # backup's index, the S3 client's models) took 0.1 to 0.2 s of every command's wall time.
    # Frozen objects are left to the process's end; the teardown still runs (atexit, every
    # module's objects released as before).
    gc.freeze()
    sys.exit(code)
