"""Installing the jobs' schedules: systemd user timers, or lines in the user's crontab.

systemd: for each scheduled job, ``cairn-JOB.service`` (a oneshot ``cairn run --config FILE
JOB``) and ``cairn-JOB.timer`` (OnCalendar= from the cron expression, Persistent=true so a run
missed while the machine was off happens at the next boot) in
``$XDG_CONFIG_HOME/systemd/user``. Units written by an earlier install from the same
configuration file whose job is no longer scheduled are removed, so the installed set always
matches the file. Then ``systemctl --user daemon-reload`` and ``enable --now`` each timer.

cron: one line per job between two marker comments in the crontab; the block is replaced as a
whole on every install, and everything else in the crontab is kept as it is.

Removing (``cairn schedule remove [JOB]``) undoes either: the units an install from the same
configuration file wrote (recognised by their first line), their timers disabled first; or the
job's lines of the block (the block when no job is left in it).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from cairn.config.schema import Config, JobConfig
from cairn.core.errors import CairnError

MARK = "# Written by `cairn schedule install` from "
CRON_BEGIN = "# BEGIN cairn jobs from "
CRON_END = "# END cairn jobs from "
_SYSTEMD_SAFE = re.compile(r"[A-Za-z0-9/_.,:=+@-]+")


class ScheduleInstallError(CairnError):
    pass


def scheduled(config: Config) -> list[JobConfig]:
    return [j for j in config.jobs.values() if j.schedule is not None]


def run_command(config: Config) -> list[str]:
    """How a timer or cron runs cairn: this interpreter, so the same installation runs."""
    return [sys.executable, "-m", "cairn", "run", "--config", os.path.abspath(config.file)]


# ---------------------------------------------------------------------- systemd
def systemd_dir() -> Path:
    return Path(platformdirs.user_config_dir()) / "systemd" / "user"


def systemd_quote(arg: str) -> str:
    """One ExecStart= word: specifiers (%) and variables ($) escaped, quoted if needed."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_SAFE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_units(config: Config) -> dict[str, str]:
    """File name -> content, two units per scheduled job."""
    source = os.path.abspath(config.file)
    units = {}
    for job in scheduled(config):
        assert job.schedule is not None
        argv = [*run_command(config), job.name]
        units[f"cairn-{job.name}.service"] = (
            f"{MARK}{source}\n"
            "[Unit]\n"
            f"Description=cairn backup job {job.name}\n\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"ExecStart={' '.join(systemd_quote(a) for a in argv)}\n"
            "Nice=10\n"
            "IOSchedulingClass=best-effort\n"
            "IOSchedulingPriority=7\n"
        )
        calendars = "".join(f"OnCalendar={c}\n" for c in job.schedule.on_calendar())
        units[f"cairn-{job.name}.timer"] = (
            f"{MARK}{source}\n"
            "[Unit]\n"
            f"Description=cairn backup job {job.name} ({job.schedule.expression})\n\n"
            "[Timer]\n"
            f"{calendars}"
            "Persistent=true\n\n"
            "[Install]\n"
            "WantedBy=timers.target\n"
        )
    return units


@dataclass
class InstallPlan:
    directory: Path
    write: dict[str, str] = field(default_factory=dict)  # file name -> content
    remove: list[str] = field(default_factory=list)  # stale units of this configuration
    commands: list[list[str]] = field(default_factory=list)  # systemctl, in order


def plan_systemd(config: Config, directory: Path | None = None) -> InstallPlan:
    directory = directory or systemd_dir()
    plan = InstallPlan(directory, write=systemd_units(config))
    installed = installed_units(os.path.abspath(config.file), directory)
    plan.remove = [n for names in installed.values() for n in names if n not in plan.write]
    _add_commands(plan)
    return plan


def installed_units(source: str, directory: Path | None = None) -> dict[str, list[str]]:
    """Job name -> the unit files an install from the configuration file ``source`` wrote
    (recognised by their first line), in ``directory``."""
    directory = directory or systemd_dir()
    units: dict[str, list[str]] = {}
    if not directory.is_dir():
        return units
    for path in sorted(directory.glob("cairn-*")):
        if path.suffix not in (".service", ".timer"):
            continue
        try:
            first = path.read_text(errors="replace").split("\n", 1)[0]
        except OSError:
            continue
        if first == f"{MARK}{source}":
            units.setdefault(path.stem.removeprefix("cairn-"), []).append(path.name)
    return units


def plan_systemd_removal(
    source: str, jobs: list[str], directory: Path | None = None
) -> InstallPlan:
    """Undoing ``plan_systemd`` for ``jobs`` (all of them when empty): the units installed
    from the configuration file ``source``, their timers disabled first. A job named that has
    no unit installed is an error naming the jobs that have."""
    directory = directory or systemd_dir()
    installed = installed_units(source, directory)
    missing = [j for j in jobs if j not in installed]
    if missing:
        known = ", ".join(installed) or "none"
        raise ScheduleInstallError(
            f"no schedule of job {missing[0]!r} is installed from {source} (installed: {known})"
        )
    plan = InstallPlan(directory)
    plan.remove = [n for job in (jobs or list(installed)) for n in installed[job]]
    if plan.remove:
        _add_commands(plan)
    return plan


def _add_commands(plan: InstallPlan) -> None:
    """The systemctl commands of ``plan``: disable the timers removed, reload, enable the
    timers written."""
    systemctl = ["systemctl", "--user"]
    for name in plan.remove:
        if name.endswith(".timer"):
            plan.commands.append([*systemctl, "disable", "--now", name])
    plan.commands.append([*systemctl, "daemon-reload"])
    for name in plan.write:
        if name.endswith(".timer"):
            plan.commands.append([*systemctl, "enable", "--now", name])


def apply_systemd(
    plan: InstallPlan,
    enable: bool,
    hint: str = "the unit files are written; use --no-enable to write them only",
) -> None:
    """Writes (and removes) the unit files; with ``enable``, runs the systemctl commands around
    it; ``hint`` ends the error of a systemctl command that failed."""
    removing = [c for c in plan.commands if "disable" in c]
    if enable:
        for cmd in removing:
            _systemctl(cmd, check=False)  # a unit that was never enabled is fine
    plan.directory.mkdir(parents=True, exist_ok=True)
    for name in plan.remove:
        (plan.directory / name).unlink(missing_ok=True)
    for name, content in plan.write.items():
        tmp = plan.directory / f".{name}.tmp"
        tmp.write_text(content)
        os.replace(tmp, plan.directory / name)
    if enable:
        for cmd in plan.commands:
            if cmd not in removing:
                _systemctl(cmd, check=True, hint=hint)


def _systemctl(cmd: list[str], check: bool, hint: str = "") -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise ScheduleInstallError(f"cannot run systemctl: {e.strerror}") from None
    if check and proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or [f"status {proc.returncode}"]
        raise ScheduleInstallError(f"{' '.join(cmd)} failed: {detail[0]} ({hint})")


# ---------------------------------------------------------------------- cron
def cron_lines(config: Config) -> list[str]:
    """One crontab line per scheduled job ('%' escaped, as cron requires); --quiet, so that
    cron mails only warnings and errors."""
    base = [*run_command(config), "--quiet"]
    lines = []
    for job in scheduled(config):
        assert job.schedule is not None
        command = " ".join(shlex.quote(a) for a in [*base, job.name]).replace("%", "\\%")
        lines.append(f"{job.schedule.cron} {command}")
    return lines


def merge_crontab(existing: str, config: Config) -> str:
    """The crontab with this configuration's block replaced (added at the end if new, removed
    if no job is scheduled any more)."""
    source = os.path.abspath(config.file)
    begin, end = f"{CRON_BEGIN}{source}", f"{CRON_END}{source}"
    kept: list[str] = []
    inside = False
    for line in existing.splitlines():
        if line == begin:
            inside = True
        elif line == end and inside:
            inside = False
        elif not inside:
            kept.append(line)
    lines = cron_lines(config)
    if lines:
        kept += [begin, *lines, end]
    return "\n".join(kept) + "\n" if kept else ""


def remove_from_crontab(existing: str, source: str, jobs: list[str]) -> tuple[str, list[str]]:
    """The crontab without the lines of ``jobs`` (the whole block when empty) in the block of
    the configuration file ``source``, and the lines removed; the block's markers go when no
    line is left in it."""
    begin, end = f"{CRON_BEGIN}{source}", f"{CRON_END}{source}"
    kept: list[str] = []
    block: list[str] | None = None
    removed: list[str] = []
    for line in existing.splitlines():
        if line == begin and block is None:
            block = []
        elif line == end and block is not None:
            ours = [ln for ln in block if not jobs or cron_job(ln) in jobs]
            removed += ours
            rest = [ln for ln in block if ln not in ours]
            if rest:
                kept += [begin, *rest, end]
            block = None
        elif block is not None:
            block.append(line)
        else:
            kept.append(line)
    if block is not None:  # no end marker: keep the lines as they were
        kept += [begin, *block]
    return ("\n".join(kept) + "\n" if kept else ""), removed


def cron_job(line: str) -> str | None:
    """The job a line of cairn's block runs (its last word)."""
    try:
        words = shlex.split(line.replace("\\%", "%"))
    except ValueError:
        return None
    return words[-1] if words else None


def read_crontab() -> str:
    try:
        proc = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    except OSError as e:
        raise ScheduleInstallError(
            f"cannot run crontab: {e.strerror} (is cron installed?)"
        ) from None
    if proc.returncode != 0:
        if "no crontab" in proc.stderr:
            return ""
        raise ScheduleInstallError(f"crontab -l failed: {proc.stderr.strip()}")
    return proc.stdout


def write_crontab(content: str) -> None:
    proc = subprocess.run(
        ["crontab", "-"], input=content, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ScheduleInstallError(f"crontab - failed: {proc.stderr.strip()}")
