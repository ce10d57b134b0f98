"""What a command imports before it does anything: the entry point imports no command, and a
command imports what it runs, not the code of restore, mount, prune, the cost model or the web
interface (each import is CPU time that every run of the command pays)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Imports the entry point, runs ``cairn ARGS`` (if any) in the same process, and writes the
# names of the modules loaded to OUT.
PROBE = """
import json, sys
from cairn.cli.main import main
out, args = sys.argv[1], sys.argv[2:]
code = main(args) if args else 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""

# Neither a backup nor the commands that list snapshots need any of these.
NOT_FOR_BACKUP = (
    "cairn.ops.restore",
    "cairn.ops.mount",
    "cairn.ops.prune",
    "cairn.ops.cost",
    "cairn.ops.copy",
    "cairn.ops.check",
    "cairn.ops.mirror",
    "cairn.app.restore",
    "cairn.app.mount",
    "cairn.app.prune",
    "cairn.app.cost",
    "cairn.app.copy",
    "cairn.app.check",
    "cairn.cli.restore",
    "cairn.cli.mount",
    "cairn.cli.check",
    "cairn.cli.prune",
    "cairn.web",
)


def loaded(tmp_path: Path, *args: str | os.PathLike[str]) -> list[str]:
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, out, *[os.fspath(a) for a in args]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["code"] == 0, proc.stderr
    return doc["modules"]


def among(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m in packages or m.startswith(tuple(p + "." for p in packages))]


def test_the_entry_point_imports_no_command(tmp_path):
    modules = loaded(tmp_path)
    assert "cairn.cli.main" in modules
    assert among(modules, ("cairn.app", "cairn.ops", "cairn.repo", "cairn.web")) == []
    commands = [m for m in modules if m.startswith("cairn.cli.")]
    assert set(commands) <= {"cairn.cli.main", "cairn.cli.lazygroup", "cairn.cli.helpformat"}


def test_help_lists_every_command_without_importing_one(tmp_path):
    modules = loaded(tmp_path, "--help")
    assert among(modules, ("cairn.app", "cairn.ops", "cairn.web")) == []


@pytest.mark.parametrize("command", ["backup", "snapshots", "ls", "forget"])
def test_a_commands_help_imports_that_command_only(tmp_path, command):
    modules = loaded(tmp_path, command, "--help")
    assert f"cairn.cli.{command}" in modules
    others = {"backup", "snapshots", "ls", "forget", "restore", "mount", "check", "serve"}
    assert among(modules, tuple(f"cairn.cli.{c}" for c in others - {command})) == []
    if command != "forget":  # forget --prune runs a prune
        assert among(modules, NOT_FOR_BACKUP) == []


def test_a_backup_imports_no_restore_prune_mount_cost_or_web(tmp_path, repo_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_bytes(b"some data" * 1000)
    modules = loaded(tmp_path, "backup", "--repo", repo_path, data, "--json")
    assert "cairn.ops.backup.snapshot_writer" in modules
    assert among(modules, NOT_FOR_BACKUP) == []


def test_listing_snapshots_imports_no_restore_prune_mount_cost_or_web(tmp_path, repo_path):
    modules = loaded(tmp_path, "snapshots", "--repo", repo_path, "--json")
    assert "cairn.cli.snapshots" in modules
    assert among(modules, NOT_FOR_BACKUP) == []
    assert among(modules, ("cairn.ops.backup", "cairn.repo.filescache", "sqlite3")) == []


def backed_up(tmp_path: Path, repo_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_bytes(b"some data" * 1000)
    for _ in range(3):
        assert run_cli("backup", "--repo", repo_path, data).code == 0


def test_a_check_imports_neither_repair_nor_the_cost_model(tmp_path, repo_path, run_cli):
    backed_up(tmp_path, repo_path, run_cli)
    modules = loaded(tmp_path, "check", "--repo", repo_path)
    assert "cairn.ops.check" in modules
    unneeded = ("cairn.ops.repair", "cairn.ops.cost", "cairn.ops.prune", "cairn.ops.restore")
    assert among(modules, (*unneeded, "cairn.app.cost", "cairn.ops.mount", "cairn.web")) == []


def test_forget_imports_the_prune_for_prune_only(tmp_path, repo_path, run_cli):
    backed_up(tmp_path, repo_path, run_cli)
    modules = loaded(tmp_path, "forget", "--repo", repo_path, "--keep-last", "2")
    assert "cairn.ops.forget" in modules
    # the record of the run counts the removed backups' requests (ops.cost.estimate): no more
    assert among(modules, tuple(p for p in NOT_FOR_BACKUP if p != "cairn.ops.cost")) == []
    modules = loaded(tmp_path, "forget", "--repo", repo_path, "--keep-last", "1", "--prune")
    assert "cairn.ops.prune" in modules
    assert among(modules, ("cairn.ops.restore", "cairn.app.cost", "cairn.ops.mount")) == []


TUNE = """
import subprocess, sys
started = []
real = subprocess.Popen.__init__
def record(self, *args, **kwargs):
    started.append(args[0] if args else kwargs.get("args"))
    real(self, *args, **kwargs)
subprocess.Popen.__init__ = record
from cairn.core.memory import trim_malloc, tune_malloc
print(tune_malloc(), trim_malloc() in (True, False), started)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="glibc on Linux")
def test_tuning_the_allocator_starts_no_process():
    """Every command tunes glibc's allocator first: finding the C library by its name ran
    ``ldconfig -p`` each time."""
    proc = subprocess.run([sys.executable, "-c", TUNE], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["True", "True", "[]"]
