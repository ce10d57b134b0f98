"""cairn generate: shell completion scripts and manual pages."""

from __future__ import annotations

from pathlib import Path

import click
from click.shell_completion import get_completion_class

from cairn import __version__
from cairn.cli.helpformat import CairnCommand
from cairn.cli.manpage import write_pages
from cairn.core.errors import UsageError
from cairn.ui.output import Output

PROG = "cairn"
COMPLETE_VAR = "_CAIRN_COMPLETE"  # what click reads: _{PROG}_COMPLETE


def completion_script(root: click.Command, shell: str) -> str:
    """The script of click's shell completion for ``shell``: it calls ``cairn`` with
    $_CAIRN_COMPLETE set to ask for the completions of the words typed."""
    cls = get_completion_class(shell)
    if cls is None:
        raise UsageError(f"no completion for shell {shell}")
    return cls(root, {}, PROG, COMPLETE_VAR).source()


def _write(path: str, text: str, what: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise UsageError(f"cannot write {what} to {path}: {e.strerror}") from None


@click.command("generate", cls=CairnCommand)
@click.option("--bash-completion", metavar="FILE", help="Write the bash completion script to FILE.")
@click.option("--zsh-completion", metavar="FILE", help="Write the zsh completion script to FILE.")
@click.option("--fish-completion", metavar="FILE", help="Write the fish completion script to FILE.")
@click.option("--man", "man_dir", metavar="DIR", help="Write a manual page per command into DIR.")
@click.pass_context
def command(
    ctx: click.Context,
    bash_completion: str | None,
    zsh_completion: str | None,
    fish_completion: str | None,
    man_dir: str | None,
) -> int:
    """Write shell completion scripts and manual pages (one per command).

    \b
    Examples:
      cairn generate --bash-completion ~/.local/share/bash-completion/completions/cairn
      cairn generate --zsh-completion ~/.zfunc/_cairn
      cairn generate --fish-completion ~/.config/fish/completions/cairn.fish
      cairn generate --man ~/.local/share/man/man1
    """
    scripts = {"bash": bash_completion, "zsh": zsh_completion, "fish": fish_completion}
    if not man_dir and not any(scripts.values()):
        raise UsageError(
            "nothing to generate: give --bash-completion, --zsh-completion, "
            "--fish-completion or --man"
        )
    root = ctx.find_root()
    out = Output()
    for shell, path in scripts.items():
        if path:
            _write(path, completion_script(root.command, shell), f"the {shell} completion")
            out.line(f"wrote {shell} completion to {path}")
    if man_dir:
        top = click.Context(root.command, info_name=PROG, **root.command.context_settings)
        try:
            written = write_pages(top, Path(man_dir), __version__)
        except OSError as e:
            raise UsageError(f"cannot write manual pages to {man_dir}: {e.strerror}") from None
        out.line(f"wrote {len(written)} manual pages to {man_dir}")
    return 0
