"""What restic users expect around the commands: --help with the command's own options first,
examples in every help, `cairn version`, `cairn cache`, and `cairn generate` (completion
scripts and manual pages)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from cairn.cli.helpformat import REPOSITORY_HEADING, RepositoryOption
from cairn.cli.main import COMMANDS, cli
from tests.conftest import CAIRN

DAY = 86400


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def leaf_commands() -> list[tuple[list[str], click.Command]]:
    out = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            out.append((path, cmd))

    walk(cli, [])
    return out


LEAVES = leaf_commands()


def examples(help_text: str) -> list[list[str]]:
    """The command lines under 'Examples:' (what comes before a pipe or redirection)."""
    lines = help_text.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    cmds = []
    for line in lines:
        words = shlex.split(line.split(" | ")[-1].split(" > ")[0])
        assert words[0] == "cairn", line
        cmds.append(words[1:])
    return cmds


@pytest.mark.parametrize("path,cmd", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_help_lists_own_options_first_then_the_repository_ones(path, cmd, run_cli):
    text = ok(run_cli(*path, "--help")).out
    heading = f"\n{REPOSITORY_HEADING}:\n"
    own = [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden]
    shared = [p for p in own if isinstance(p, RepositoryOption)]
    own = [p for p in own if not isinstance(p, RepositoryOption)]
    assert own or shared
    if shared:
        assert text.count(heading) == 1
        before, after = text.split(heading)
    else:
        assert REPOSITORY_HEADING not in text
        before, after = text, ""
    assert "\nOptions:\n" in before
    options_part = before.split("\nOptions:\n", 1)[1]
    for p in own:
        assert p.opts[-1] in options_part, p.opts
        assert p.opts[-1] not in after.split(), p.opts
    for p in shared:
        assert p.opts[-1] in after, p.opts
        assert p.opts[-1] not in options_part.split(), p.opts
    assert "-h, --help" in options_part
    assert "--repo" not in options_part


@pytest.mark.parametrize("path,cmd", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_help_has_examples_that_parse(path, cmd, run_cli):
    text = ok(run_cli(*path, "--help")).out
    assert "\n  Examples:\n" in text
    lines = examples(text)
    assert lines
    for args in lines:
        assert args[: len(path)] == path, args
        # every option and argument of the example is one the command takes
        cmd.make_context(" ".join(["cairn", *path]), args[len(path) :])


# ------------------------------------------------------------------ version
def test_version_text_and_json(run_cli):
    from cairn import __version__

    text = ok(run_cli("version")).out
    assert text.startswith(f"cairn {__version__} on ")
    assert sys.version.split()[0] in text
    doc = ok(run_cli("version", "--json")).json()
    assert doc["version"] == __version__
    assert doc["python"] == sys.version.split()[0]
    assert doc["platform"] == sys.platform
    assert ok(run_cli("--version")).out.strip().endswith(__version__)


# ------------------------------------------------------------------ cache
def make_cache(base: Path, repo_id: str, size: int, unused_days: float) -> Path:
    d = base / repo_id
    (d / "sub").mkdir(parents=True)
    (d / "files.sqlite").write_bytes(b"x" * size)
    (d / "pending-packs").write_bytes(b"y" * 100)
    when = time.time() - unused_days * DAY
    for p in (d / "files.sqlite", d / "pending-packs", d / "sub", d):
        os.utime(p, (when, when))
    return d


def test_cache_lists_and_cleans_up_old_caches(tmp_path, run_cli):
    base = tmp_path / "cache"
    base.mkdir()
    (base / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    fresh = make_cache(base, "a" * 32, 5000, unused_days=2)
    old = make_cache(base, "b" * 32, 7000, unused_days=45)
    (base / "not-a-repository").mkdir()

    doc = ok(run_cli("cache", "--json")).json()
    assert doc["directory"] == str(base)
    got = {c["repository"]: c for c in doc["caches"]}
    assert set(got) == {"a" * 32, "b" * 32}
    assert got["a" * 32]["size"] == 5100 and got["b" * 32]["size"] == 7100
    assert abs(got["b" * 32]["last_used"] - (time.time() - 45 * DAY)) < 60
    assert [got[k]["old"] for k in ("a" * 32, "b" * 32)] == [False, True]
    text = ok(run_cli("cache")).out
    assert "aaaaaaaa" in text and "bbbbbbbb" in text and "cairn cache --cleanup" in text

    # a file used recently makes the cache recent
    os.utime(old / "files.sqlite")
    assert not any(c["old"] for c in ok(run_cli("cache", "--json")).json()["caches"])
    past = time.time() - 45 * DAY
    os.utime(old / "files.sqlite", (past, past))

    # --max-unused moves the line; nothing removed without --cleanup
    doc = ok(run_cli("cache", "--json", "--max-unused", "1d")).json()
    assert all(c["old"] and not c["removed"] for c in doc["caches"])
    assert fresh.exists() and old.exists()

    text = ok(run_cli("cache", "--cleanup")).out
    assert "removed 1 old cache" in text
    assert fresh.exists() and not old.exists()
    assert (base / "CACHEDIR.TAG").exists() and (base / "not-a-repository").exists()

    ok(run_cli("cache", "--cleanup", "--max-age", "1"))  # restic's name, in days
    assert not fresh.exists()
    assert "no caches" in ok(run_cli("cache")).out


def test_cache_bad_age_is_refused(tmp_path, run_cli):
    d = make_cache(tmp_path / "cache", "c" * 32, 10, unused_days=90)
    res = run_cli("cache", "--cleanup", "--max-unused", "soon")
    assert res.code != 0 and "invalid age" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert d.exists()


def test_backup_marks_its_cache_used(tmp_path, repo_path, run_cli):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    ok(run_cli("backup", "--repo", repo_path, src))
    (cache,) = ok(run_cli("cache", "--json")).json()["caches"]
    d = Path(cache["path"])
    past = time.time() - 60 * DAY
    for p in [*d.rglob("*"), d]:
        os.utime(p, (past, past))
    assert ok(run_cli("cache", "--json")).json()["caches"][0]["old"]
    ok(run_cli("backup", "--repo", repo_path, src))
    (cache,) = ok(run_cli("cache", "--json")).json()["caches"]
    assert not cache["old"] and time.time() - cache["last_used"] < 60


# ------------------------------------------------------------------ generate
@pytest.fixture
def cairn_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment with a `cairn` program on PATH, as an installed one."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "cairn"
    exe.write_text(f'#!/bin/sh\nexec {shlex.join(CAIRN)} "$@"\n')
    exe.chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def test_bash_completion_is_registered_and_completes(tmp_path, run_cli, cairn_on_path):
    script = tmp_path / "cairn.bash"
    ok(run_cli("generate", "--bash-completion", script))
    shown = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(script))} && complete -p cairn"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "_cairn_completion" in shown and shown.strip().endswith("cairn")
    # what bash does on TAB: the completion function, with the words typed
    words = subprocess.run(
        [
            "bash",
            "-c",
            f"source {shlex.quote(str(script))}; COMP_WORDS=(cairn ba); COMP_CWORD=1; "
            '_cairn_completion cairn ba cairn; printf "%s\\n" "${COMPREPLY[@]}"',
        ],
        capture_output=True,
        text=True,
        check=True,
        env=cairn_on_path,
    ).stdout.split()
    assert words == ["backup"]


def test_completion_env_protocol(cairn_on_path):
    env = {**cairn_on_path, "_CAIRN_COMPLETE": "bash_complete", "COMP_WORDS": "cairn ba",
           "COMP_CWORD": "1"}  # fmt: skip
    out = subprocess.run(["cairn"], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["plain,backup"]
    env["COMP_WORDS"], env["COMP_CWORD"] = "cairn cache --cl", "2"
    out = subprocess.run(["cairn"], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["plain,--cleanup"]


def test_zsh_and_fish_completion_scripts(tmp_path, run_cli):
    ok(run_cli("generate", "--zsh-completion", tmp_path / "_cairn",
               "--fish-completion", tmp_path / "cairn.fish"))  # fmt: skip
    zsh = (tmp_path / "_cairn").read_text()
    fish = (tmp_path / "cairn.fish").read_text()
    assert "#compdef cairn" in zsh and "_CAIRN_COMPLETE=zsh_complete" in zsh
    assert "complete --no-files --command cairn" in fish and "fish_complete" in fish


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db not installed (make system-deps)")
def test_man_pages_render_without_warnings(tmp_path, run_cli):
    mandir = tmp_path / "man"
    out = ok(run_cli("generate", "--man", mandir)).out
    pages = sorted(mandir.glob("*.1"))
    names = {p.name for p in pages}
    assert f"wrote {len(pages)} manual pages" in out
    for path, _ in LEAVES:
        assert "-".join(["cairn", *path]) + ".1" in names
    assert {"cairn.1", "cairn-key.1"} <= names
    for page in pages:
        res = subprocess.run(
            ["man", "--warnings", "-l", str(page)],
            capture_output=True,
            text=True,
            env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"},
            check=False,
        )
        assert res.returncode == 0 and res.stderr == "", (page.name, res.stderr)
    text = subprocess.run(
        ["man", "-l", str(mandir / "cairn-backup.1")],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "100"},
        check=True,
    ).stdout
    assert "cairn-backup - Back up PATHS into a new snapshot." in text
    assert text.index("--exclude-file") < text.index("REPOSITORY OPTIONS") < text.index("--repo")
    assert "      cairn backup -r /srv/backup ~/Documents ~/Pictures\n" in text


def test_generate_needs_something_to_write(run_cli, tmp_path):
    res = run_cli("generate")
    assert res.code != 0 and "nothing to generate" in res.err
    res = run_cli("generate", "--bash-completion", tmp_path / "no" / "such" / "dir")
    assert res.code != 0 and "cannot write" in res.err


def test_command_table_summaries_match_each_commands_help():
    """``cairn --help`` lists the commands from the table in cairn.cli.main, without importing
    them: each summary must be the first sentence of the command's own help."""
    ctx = click.Context(cli)
    for name, entry in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
        assert command.callback is not None and command.callback.__module__ == entry.module
        assert entry.summary == command.get_short_help_str(limit=10**6), name


@pytest.mark.parametrize("width", [40, 80, 200])
def test_listing_is_the_one_click_makes_from_the_commands(width):
    ctx = click.Context(cli)
    eager = click.Group("cairn", commands={n: cli.get_command(ctx, n) for n in COMMANDS})

    def listing(group: click.Group) -> str:
        formatter = click.HelpFormatter(width=width)
        group.format_commands(click.Context(group), formatter)
        return formatter.getvalue()

    assert "snapshots" in listing(cli)
    assert listing(cli) == listing(eager)


def test_unknown_command_suggests_among_all_commands():
    # in a process of its own: none of the commands is loaded there
    res = subprocess.run([*CAIRN, "snapshot"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "No such command 'snapshot'. Did you mean 'snapshots'?" in res.stderr
