"""cairn schedule: install the jobs' schedules as systemd timers or cron lines, remove them,
list them."""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING

import click

from cairn.cli.helpformat import CairnGroup
from cairn.cli.run import config_option, lazy
from cairn.core import clock
from cairn.core.errors import EXIT_OK, UsageError
from cairn.ui.output import Output

if TYPE_CHECKING:
    from cairn.config.schema import Config


@click.group("schedule", cls=CairnGroup)
def command() -> None:
    """Run the jobs of the configuration file on their schedules."""


@command.command("install")
@config_option
@click.option("--cron", "use_cron", is_flag=True, help="Install crontab lines, not systemd timers.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be written and run.")
@click.option(
    "--no-enable", is_flag=True, help="Write the systemd units only; do not run systemctl."
)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
def install(
    config_path: str | None, use_cron: bool, dry_run: bool, no_enable: bool, json_mode: bool
) -> int:
    """Write a systemd user timer for each scheduled job (or crontab lines with --cron).

    \b
    Examples:
      cairn schedule install --dry-run
      cairn schedule install --cron
    """
    out = Output(json_mode=json_mode)
    sched = lazy("cairn.app.schedule")
    config = lazy("cairn.config.load").load_config(config_path)
    if use_cron and no_enable:
        raise UsageError("--no-enable is for systemd timers; with --cron use --dry-run")
    if not sched.scheduled(config):
        out.warning(f"no job in {config.file} has a schedule")
    if use_cron:
        return _install_cron(out, config, dry_run)
    plan = sched.plan_systemd(config)
    enable = not (dry_run or no_enable)
    if not dry_run:
        sched.apply_systemd(plan, enable)
    if out.json_mode:
        out.json(
            {
                "method": "systemd",
                "directory": str(plan.directory),
                "dry_run": dry_run,
                "units": plan.write,
                "removed": plan.remove,
                "commands": plan.commands if enable or dry_run else [],
            }
        )
        return EXIT_OK
    verb = "would write" if dry_run else "wrote"
    for name, content in plan.write.items():
        out.line(f"{verb} {plan.directory / name}:")
        for line in content.splitlines():
            out.line(f"    {line}")
    for name in plan.remove:
        out.line(f"{'would remove' if dry_run else 'removed'} {plan.directory / name}")
    if dry_run or no_enable:
        prefix = "would run" if dry_run else "to activate, run"
        for cmd in plan.commands:
            out.line(f"{prefix}: {shlex.join(cmd)}")
    else:
        for name in plan.write:
            if name.endswith(".timer"):
                out.line(f"enabled {name}")
    return EXIT_OK


def _install_cron(out: Output, config: Config, dry_run: bool) -> int:
    sched = lazy("cairn.app.schedule")
    lines = sched.cron_lines(config)
    if not dry_run:
        sched.write_crontab(sched.merge_crontab(sched.read_crontab(), config))
    if out.json_mode:
        out.json({"method": "cron", "dry_run": dry_run, "lines": lines})
        return EXIT_OK
    out.line("would add to the crontab:" if dry_run else "installed in the crontab:")
    for line in lines:
        out.raw_line(line)
    return EXIT_OK


@command.command("remove")
@config_option
@click.argument("jobs", nargs=-1)
@click.option("--cron", "use_cron", is_flag=True, help="Remove the crontab lines, not timers.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be removed and run.")
@click.option(
    "--no-disable", is_flag=True, help="Remove the systemd unit files only; run no systemctl."
)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
def remove(
    config_path: str | None,
    jobs: tuple[str, ...],
    use_cron: bool,
    dry_run: bool,
    no_disable: bool,
    json_mode: bool,
) -> int:
    """Undo `schedule install` for JOBS (default: every job installed from the configuration
    file, also those no longer in it).

    \b
    Examples:
      cairn schedule remove --dry-run
      cairn schedule remove nightly --config /etc/cairn/config.toml
    """
    out = Output(json_mode=json_mode)
    sched = lazy("cairn.app.schedule")
    load = lazy("cairn.config.load")
    source = os.path.abspath(config_path or load.default_path())  # the file need not exist
    names = list(dict.fromkeys(jobs))
    if use_cron and no_disable:
        raise UsageError("--no-disable is for systemd timers; with --cron use --dry-run")
    if use_cron:
        return _remove_cron(out, source, names, dry_run)
    plan = sched.plan_systemd_removal(source, names)
    run_systemctl = not (dry_run or no_disable) and bool(plan.remove)
    if not dry_run:
        sched.apply_systemd(plan, run_systemctl, hint="the unit files are removed")
    if out.json_mode:
        out.json(
            {
                "method": "systemd",
                "directory": str(plan.directory),
                "dry_run": dry_run,
                "removed": plan.remove,
                "commands": plan.commands if run_systemctl or dry_run else [],
            }
        )
        return EXIT_OK
    if not plan.remove:
        out.line(f"no schedule installed from {source}")
    for name in plan.remove:
        out.line(f"{'would remove' if dry_run else 'removed'} {plan.directory / name}")
    if dry_run or no_disable:
        prefix = "would run" if dry_run else "to deactivate, run"
        for cmd in plan.commands:
            out.line(f"{prefix}: {shlex.join(cmd)}")
    return EXIT_OK


def _remove_cron(out: Output, source: str, jobs: list[str], dry_run: bool) -> int:
    sched = lazy("cairn.app.schedule")
    content, removed = sched.remove_from_crontab(sched.read_crontab(), source, jobs)
    found = {sched.cron_job(line) for line in removed}
    missing = [j for j in jobs if j not in found]
    if missing:
        raise UsageError(f"no crontab line of job {missing[0]!r} is installed from {source}")
    if removed and not dry_run:
        sched.write_crontab(content)
    if out.json_mode:
        out.json({"method": "cron", "dry_run": dry_run, "lines": removed})
        return EXIT_OK
    if not removed:
        out.line(f"no crontab line installed from {source}")
        return EXIT_OK
    out.line("would remove from the crontab:" if dry_run else "removed from the crontab:")
    for line in removed:
        out.raw_line(line)
    return EXIT_OK


@command.command("list")
@config_option
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
@click.option(
    "--count",
    default=1,
    show_default=True,
    type=click.IntRange(1, 100),
    help="How many next run times to show per job.",
)
def list_command(config_path: str | None, json_mode: bool, count: int) -> int:
    """Show every job's schedule and its next run times (local time).

    \b
    Examples:
      cairn schedule list
      cairn schedule list --count 5
    """
    out = Output(json_mode=json_mode)
    config = lazy("cairn.config.load").load_config(config_path)
    now = clock.now()
    docs = []
    for job in config.jobs.values():
        runs = job.schedule.next_runs(now, count) if job.schedule else []
        docs.append(
            {
                "job": job.name,
                "schedule": job.schedule.expression if job.schedule else None,
                "next": [t.isoformat() for t in runs],
                "on_calendar": job.schedule.on_calendar() if job.schedule else [],
            }
        )
    if out.json_mode:
        out.json(docs)
        return EXIT_OK
    rows = []
    for doc, job in zip(docs, config.jobs.values(), strict=True):
        runs = job.schedule.next_runs(now, count) if job.schedule else []
        when = "\n".join(t.strftime("%Y-%m-%d %H:%M %Z") for t in runs) or "-"
        rows.append([job.name, str(doc["schedule"] or "not scheduled"), when])
    out.table(["Job", "Schedule", "Next run"], rows)
    return EXIT_OK
