"""The ``cairn`` command: subcommands, and the mapping of errors to exit codes."""

from __future__ import annotations

import gc
import sys

import click

from cairn import __version__
from cairn.cli.lazygroup import LazyCommand, LazyGroup
from cairn.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, CairnError, Interrupted
from cairn.core.memory import tune_malloc
from cairn.ui.output import Output, route_warnings

# Each command's module is imported when the command runs (cairn.cli.lazygroup); the summary is
# the first sentence of its help, which --help lists (tests/test_cli_help.py checks they match).
COMMANDS = {
    "backup": LazyCommand("cairn.cli.backup", "Back up PATHS into a new snapshot."),
    "cache": LazyCommand(
        "cairn.cli.cache", "List the local caches of this machine, or remove old ones."
    ),
    "cat": LazyCommand(
        "cairn.cli.cat",
        "Print the config, a snapshot, tree, blob, index or key file, decrypted.",
    ),
    "check": LazyCommand("cairn.cli.check", "Check that every snapshot can be restored."),
    "copy": LazyCommand(
        "cairn.cli.copy",
        "Copy snapshots from the repository --from-repo into this one (--repo): "
        "the snapshots ID...",
    ),
    "cost": LazyCommand(
        "cairn.cli.cost",
        "What the repository costs a month, and what backups, a full restore and a prune "
        "cost, at a provider's list prices (docs/cost.md).",
    ),
    "diff": LazyCommand(
        "cairn.cli.diff",
        "Show what changed from snapshot OLD to NEW (ids, prefixes of ids, or latest): "
        "+ added, - removed, M modified (content), T type changed, U metadata only (mode, "
        "owner, mtime, xattrs; listed with --metadata).",
    ),
    "dump": LazyCommand(
        "cairn.cli.dump",
        "Write the file at PATH in SNAPSHOT to standard output (a directory: as a tar stream).",
    ),
    "find": LazyCommand(
        "cairn.cli.find",
        "Find the entries matching any PATTERN in the snapshots (all of them, or those "
        "chosen by --snapshot and the filter options).",
    ),
    "forget": LazyCommand(
        "cairn.cli.forget",
        "Remove snapshots: the ones named by ID, or those a retention policy does not keep.",
    ),
    "generate": LazyCommand(
        "cairn.cli.generate",
        "Write shell completion scripts and manual pages (one per command).",
    ),
    "init": LazyCommand("cairn.cli.init", "Create a new, empty repository."),
    "key": LazyCommand(
        "cairn.cli.key",
        "List, add, remove and change the passwords of a repository; export its master keys "
        "to a key file kept apart, and import it back.",
    ),
    "ls": LazyCommand(
        "cairn.cli.ls",
        "List the files in SNAPSHOT (an id, a prefix of one, or latest), below PATH.",
    ),
    "mirror": LazyCommand(
        "cairn.cli.mirror",
        "Keep a directory in a bucket file for file, with a manifest of its metadata.",
    ),
    "mount": LazyCommand(
        "cairn.cli.mount",
        "Mount the repository's snapshots read-only at MOUNTPOINT, until it is unmounted.",
    ),
    "prune": LazyCommand(
        "cairn.cli.prune",
        "Delete data no snapshot uses and repack packs that are mostly unused.",
    ),
    "repair": LazyCommand("cairn.cli.repair", "Repair a damaged repository."),
    "restore": LazyCommand("cairn.cli.restore", "Restore SNAPSHOT[:SUBPATH] into --target."),
    "rewrite": LazyCommand("cairn.cli.rewrite", "Write the snapshots ID..."),
    "run": LazyCommand("cairn.cli.run", "Run JOBS (default: every job in the configuration file)."),
    "schedule": LazyCommand(
        "cairn.cli.schedule", "Run the jobs of the configuration file on their schedules."
    ),
    "serve": LazyCommand(
        "cairn.cli.serve",
        "Serve a web interface to the repositories and jobs of the configuration file.",
    ),
    "snapshots": LazyCommand(
        "cairn.cli.snapshots", "List the snapshots in the repository, oldest first."
    ),
    "stats": LazyCommand(
        "cairn.cli.stats",
        "Repository totals, or with SNAPSHOT the size a restore of it would have.",
    ),
    "tag": LazyCommand("cairn.cli.tag", "Change the tags of the snapshots ID..."),
    "version": LazyCommand(
        "cairn.cli.version", "Show the version of cairn, of Python, and the platform."
    ),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cairn")
def cli() -> None:
    """cairn: encrypted, deduplicated backups to S3 and local directories."""


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
