"""cairn cat: print a repository object, decrypted, for inspection."""

from __future__ import annotations

import json
import sys

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.inspect import KINDS, cat
from cairn.cli.common import reading_options, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import EXIT_FAILED, EXIT_OK, UsageError
from cairn.ui.nodes import node_json
from cairn.ui.output import Output


@click.command("cat", cls=CairnCommand)
@repo_options
@reading_options
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("object_id", required=False)
def command(spec: RepoSpec, out: Output, kind: str, object_id: str | None) -> int:
    """Print the config, a snapshot, tree, blob, index or key file, decrypted.

    \b
    Examples:
      cairn cat -r /srv/backup config
      cairn cat -r /srv/backup snapshot 1a2b3c4d
    """
    if kind != "config" and not object_id:
        raise UsageError(f"cat {kind} needs an id")
    shown = cat(open_session(spec), kind, object_id)
    if shown.data is not None:
        sys.stdout.buffer.write(shown.data)
        sys.stdout.flush()
        return EXIT_OK
    doc = shown.doc or {}
    if kind == "tree":
        # what breaks the format's rules is shown, not printed as if it were valid
        for problem in shown.problems:
            out.warning(problem)
        doc = {"nodes": [node_json(n.name, n) for n in shown.nodes], **doc}
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    return EXIT_FAILED if shown.problems else EXIT_OK
