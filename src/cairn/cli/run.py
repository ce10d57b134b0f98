"""cairn run: run the jobs of the configuration file, then show what each one did."""

from __future__ import annotations

import importlib
import sqlite3
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

from cairn.cli.helpformat import CairnCommand
from cairn.core import clock
from cairn.core.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, UsageError
from cairn.core.units import count, format_bytes, format_duration
from cairn.ui.output import Output
from cairn.ui.progress import TerminalProgress

if TYPE_CHECKING:
    from cairn.app.jobs import JobResult

OK, PARTIAL, FAILED = "ok", "partial", "failed"  # as cairn.app.jobs


def lazy(module: str) -> ModuleType:
    """Jobs and schedules load the database sources, croniter and more: only when used, so
    that every other command starts fast."""
    return importlib.import_module(module)


def config_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "-c",
        "--config",
        "config_path",
        envvar="CAIRN_CONFIG",
        metavar="FILE",
        help="Configuration file (or $CAIRN_CONFIG; default ~/.config/cairn/config.toml).",
    )(f)


@click.command("run", cls=CairnCommand)
@config_option
@click.argument("jobs", nargs=-1)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def command(config_path: str | None, jobs: tuple[str, ...], json_mode: bool, quiet: bool) -> int:
    """Run JOBS (default: every job in the configuration file).

    Each job backs up, then applies its retention policy (forget, then prune). A job that is
    already running is not started twice. Exit status: 0 all ok, 1 a job failed, 3 a job could
    not read some files (or some changed while they were read).

    \b
    Examples:
      cairn run
      cairn run -c /etc/cairn/config.toml home databases
    """
    out = Output(json_mode=json_mode, quiet=quiet)
    jobs_module = lazy("cairn.app.jobs")
    config = lazy("cairn.config.load").load_config(config_path)
    names = list(dict.fromkeys(jobs)) or list(config.jobs)
    unknown = [n for n in names if n not in config.jobs]
    if unknown:
        known = ", ".join(config.jobs) or "none"
        raise UsageError(f"no job {unknown[0]!r} in {config.file} (jobs: {known})")
    if not names:
        raise UsageError(f"{config.file} declares no jobs ([jobs.NAME])")
    results = []
    history = _history(out)
    for name in names:
        out.line(f"job {name}: running")
        progress = TerminalProgress(out, name)
        job = config.jobs[name]
        run = _begin(history, job, out)
        result: JobResult | None = None
        try:
            result = jobs_module.JobRunner(
                job, progress, out.warning, scan=progress.shows_totals
            ).run()
        finally:
            progress.close()
            if run is not None:
                _finish(history, run, result, out)
        assert result is not None
        results.append(result)
        if result.status == FAILED:
            out.error(f"job {name} failed: {result.error}")
        out.line(describe(result))
    counts = {s: sum(r.status == s for r in results) for s in (OK, PARTIAL, FAILED)}
    if out.json_mode:
        out.json({"jobs": [r.as_dict() for r in results], **counts})
    else:
        out.line(
            f"{count(len(results), 'job')}: {counts[OK]} ok, {counts[PARTIAL]} partial, "
            f"{counts[FAILED]} failed"
        )
    if counts[FAILED]:
        return EXIT_FAILED
    return EXIT_PARTIAL if counts[PARTIAL] else EXIT_OK


def describe(r: JobResult) -> str:
    parts = [f"job {r.job}: {r.status}"]
    snap = r.snapshot
    if snap is not None and snap.id:
        s = snap.summary
        parts.append(
            f"snapshot {snap.id[:8]} ({s.files_new} new, {s.files_changed} changed, "
            f"{s.files_unchanged} unchanged files; {format_bytes(s.bytes_read)} read, "
            f"{format_bytes(s.bytes_added)} added)"
        )
    if (m := r.mirror) is not None:
        parts.append(
            f"mirror generation {m['generation']} ({m['files']} files; uploaded {m['uploaded']}, "
            f"{format_bytes(m['uploaded_bytes'])}; copied {m['copied']}; removed "
            f"{m['removed'] + m['trashed']})"
        )
    if (c := r.copy) is not None:
        parts.append(
            f"copied {count(c['copied'], 'snapshot')} of {c['chosen']} from {c['source']} "
            f"({format_bytes(c['bytes_stored'])} sent)"
        )
    if r.kept or r.forgotten:
        parts.append(f"kept {r.kept}, forgot {count(r.forgotten, 'snapshot')}")
    if r.prune is not None:
        if r.prune.get("postponed"):
            parts.append(f"prune postponed ({r.prune['postponed']})")
        else:
            parts.append(
                f"pruned {count(r.prune['packs_deleted'], 'pack')}, "
                f"{format_bytes(r.prune['bytes_freed'])} freed"
            )
    if r.error and r.status != FAILED:
        parts.append(r.error)
    return ", ".join(parts) + f" in {format_duration(r.duration)}"


def _history(out: Output) -> Any:
    """The history of operations the web interface shows (``cairn.app.history``), or None
    where it cannot be opened (said in a warning: the jobs run all the same)."""
    history = lazy("cairn.app.history")
    try:
        return history.History(history.state_dir() / history.HISTORY_FILE)
    except (OSError, sqlite3.Error) as e:
        out.warning(f"the history of runs cannot be written: {e}")
        return None


def _begin(history: Any, job: Any, out: Output) -> int | None:
    if history is None:
        return None
    origin = lazy("cairn.app.history").started_by()
    now = clock.now().timestamp()
    title = f"job {job.name}"
    try:
        return int(history.begin(job.repository.name, "job", title, job.name, now, origin))
    except (OSError, sqlite3.Error) as e:
        out.warning(f"the history of runs cannot be written: {e}")
        return None


def _finish(history: Any, run: int, result: JobResult | None, out: Output) -> None:
    """The run's outcome, summary and warnings (a run stopped by Ctrl-C: interrupted)."""
    if result is None:
        outcome, summary, log = "interrupted", "stopped before it finished", ""
    else:
        outcome, summary, log = result.status, describe(result), "\n".join(result.warnings)
        if result.error and result.status == FAILED:
            summary = f"{summary}: {result.error}"
    try:
        history.finish(run, outcome, summary, log, clock.now().timestamp())
    except (OSError, sqlite3.Error) as e:
        out.warning(f"the history of runs cannot be written: {e}")
