"""Running the jobs of the configuration file: lock, ping, hooks, backup, forget, prune.

One job runs as:

1. take the job's lock (a second run of the same job fails at once);
2. ping the healthcheck URL/start;
3. run the ``before`` hooks in order (one failing fails the job, and nothing is backed up);
4. back up the paths or the source's streams, tagged ``job:NAME`` plus the job's tags (a
   mirror job, ``mirror = URL``, pushes its one directory to the mirror instead; a copy job,
   ``copy-from = NAME``, copies the snapshots of that repository it has no copy of yet);
5. with a retention policy, forget the job's snapshots of this host that the policy does not
   keep (all of the job's snapshots form one group), then prune if any were removed;
6. run the ``after`` hooks, always, with CAIRN_JOB_STATUS (ok, partial or failed) and
   CAIRN_SNAPSHOT (the new snapshot's id, if one was saved) in their environment;
7. ping the healthcheck URL on success, URL/fail otherwise, with a short report.

Jobs never share state: a failed job does not stop the next one. Hook commands run with
/bin/sh, their output goes to stderr (stdout may carry --json); messages name hooks by their
position, never by their text.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cairn.app.backup import BackupRequest, backup
from cairn.app.context import Session, open_session
from cairn.app.copy import CopyRequest, copy
from cairn.app.events import Events
from cairn.app.forget import ForgetRequest, forget
from cairn.app.healthcheck import ping
from cairn.app.joblock import JobLock
from cairn.app.mirror import MirrorSpec, PushRequest, push_mirror
from cairn.app.repositories import repo_spec
from cairn.app.snapshots import snapshot_filter
from cairn.config.schema import JobConfig, RepositoryConfig
from cairn.core import clock
from cairn.core.errors import CairnError
from cairn.core.units import format_bytes
from cairn.model.snapshot import Snapshot

OK, PARTIAL, FAILED = "ok", "partial", "failed"


@dataclass
class JobResult:
    job: str
    status: str = OK
    error: str | None = None
    snapshot: Snapshot | None = None
    forgotten: int = 0  # snapshots removed by the retention policy
    kept: int = 0
    prune: dict[str, Any] | None = None
    mirror: dict[str, Any] | None = None  # what a mirror job's push did
    copy: dict[str, Any] | None = None  # what a copy job copied
    warnings: list[str] = field(default_factory=list)
    duration: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "status": self.status,
            "error": self.error,
            "snapshot": self.snapshot.to_json() if self.snapshot else None,
            "forgotten": self.forgotten,
            "kept": self.kept,
            "prune": self.prune,
            "mirror": self.mirror,
            "copy": self.copy,
            "warnings": self.warnings,
            "duration": round(self.duration, 3),
        }

    def report(self) -> str:
        """A few lines for the healthcheck ping: what happened, no secrets."""
        lines = [f"cairn job {self.job}: {self.status}"]
        if self.snapshot is not None:
            s = self.snapshot.summary
            lines.append(
                f"snapshot {self.snapshot.id[:8]}: {format_bytes(s.bytes_read)} read, "
                f"{format_bytes(s.bytes_added)} added"
            )
        if self.mirror is not None:
            m = self.mirror
            lines.append(
                f"mirror generation {m['generation']}: {m['files']} files, uploaded "
                f"{m['uploaded']} ({format_bytes(m['uploaded_bytes'])}), copied {m['copied']}, "
                f"removed {m['removed'] + m['trashed']}"
            )
        if self.copy is not None:
            c = self.copy
            lines.append(
                f"copied {c['copied']} of {c['chosen']} snapshots from {c['source']}: "
                f"{format_bytes(c['bytes_stored'])} sent"
            )
        if self.forgotten or self.kept:
            lines.append(f"retention: kept {self.kept}, removed {self.forgotten}")
        if self.error:
            lines.append(f"error: {self.error}")
        lines += self.warnings[-20:]
        return "\n".join(lines) + "\n"


class JobFailed(CairnError):
    pass


class JobRunner:
    """Runs one job; ``progress`` shows the backup, ``warn`` receives one-line warnings;
    ``scan``: the backup counts its paths beforehand, for a total that progress shows."""

    def __init__(
        self, job: JobConfig, progress: Events, warn: Callable[[str], None], scan: bool = True
    ) -> None:
        self.job = job
        self.progress = progress
        self.scan = scan
        self._warn = warn
        self.result = JobResult(job.name)

    def warn(self, text: str) -> None:
        self.result.warnings.append(text)
        self._warn(text)

    def run(self) -> JobResult:
        t0 = clock.monotonic()
        try:
            with JobLock(self.job.name):
                self._ping("start")
                try:
                    self._hooks("before", self.job.hooks.before)
                    self._backup_and_rotate()
                except CairnError as e:
                    self._fail(str(e))
                except Exception as e:  # one job's bug must not stop the others
                    self._fail(f"{type(e).__name__}: {e}")
                finally:
                    self._after()
                self.result.duration = clock.monotonic() - t0
                self._ping("success" if self.result.status == OK else "fail", self.result.report())
        except CairnError as e:  # busy: the running instance pings for itself
            self._fail(str(e))
        self.result.duration = clock.monotonic() - t0
        return self.result

    def _fail(self, message: str) -> None:
        if self.result.status != FAILED:
            self.result.status, self.result.error = FAILED, message

    # ------------------------------------------------------------------ steps
    def _backup_and_rotate(self) -> None:
        if self.job.mirror is not None:
            self._mirror()
            return
        if self.job.copy_from is not None:
            self._copy(self.job.copy_from)
            return
        session = open_session(repo_spec(self.job.repository))
        session.repo.on_notice = self._notice
        self._backup(session)
        if self.job.retention is not None and self.result.snapshot is not None:
            self._rotate(session.reopened())

    def _notice(self, obj: str, message: str) -> None:
        self.warn(f"{obj}: {message}")

    def _backup(self, session: Session) -> None:
        job = self.job
        request = BackupRequest(
            paths=list(job.paths),
            excludes=list(job.excludes),
            exclude_files=list(job.exclude_files),
            one_file_system=job.one_file_system,
            streams=job.streams(),
            tags=[*job.tags, job.tag],
            host=job.host,
            scan=self.scan,
        )
        result = backup(session, request, self.progress)
        self.result.snapshot = result.snapshot
        if result.partial:
            self.result.status = PARTIAL
            self.result.error = "; ".join(result.problems())

    def _mirror(self) -> None:
        job, how = self.job, self.job.mirror
        assert how is not None
        spec = repo_spec(job.repository)
        mirror = MirrorSpec(
            spec.resolved_url(), store=spec.store, cache_dir=spec.cache_dir, password=spec.password
        )
        request = PushRequest(
            source=job.paths[0],
            delete=how.delete,
            keep_deleted_days=how.keep_deleted,
            checksum=how.checksum,
            host=job.host,
        )
        r = push_mirror(mirror, request).result
        self.result.mirror = {
            k: getattr(r, k)
            for k in ("generation", "files", "bytes", "uploaded", "uploaded_bytes", "copied")
        } | {"removed": r.removed, "trashed": r.trashed}
        if r.unreadable:
            self.result.status = PARTIAL
            shown = [
                f"{u.path.decode(errors='backslashreplace')}: {u.error}" for u in r.unreadable[:10]
            ]
            self.result.error = "; ".join(shown)

    def _copy(self, source: RepositoryConfig) -> None:
        job = self.job
        session = open_session(repo_spec(job.repository))
        session.repo.on_notice = self._notice
        tags = [",".join(job.tags)] if job.tags else []
        request = CopyRequest(
            replace(repo_spec(source), notice=self.warn),
            filter=snapshot_filter(hosts=[job.host] if job.host else [], tags=tags),
        )
        r = copy(session, request, self.progress)
        self.result.copy = {
            "source": source.name,
            "chosen": len(r.snapshots),
            "copied": len(r.copied),
            "snapshots": [c.copy.id for c in r.copied if c.copy is not None],
            "bytes_stored": r.totals.bytes_stored,
            "requests": r.requests,
            "source_requests": r.source_requests,
        }
        problems = [f"{c.source.id[:8]}: {p}" for c in r.copied for p in c.problems]
        if problems:
            self.result.status = PARTIAL
            self.result.error = "; ".join(problems[:10])

    def _rotate(self, session: Session) -> None:
        assert self.job.retention is not None and self.result.snapshot is not None
        retention = self.job.retention
        request = ForgetRequest(
            rules=retention.policy,
            group_by="",  # the job's snapshots of this host form one group
            filter=snapshot_filter(hosts=[self.result.snapshot.host], tags=[self.job.tag]),
            prune=retention.prune,
        )
        result = forget(session, request, self.progress)
        self.result.kept = sum(len(g.kept) for g in result.groups)
        self.result.forgotten = result.removed
        if result.prune_error is not None:
            raise result.prune_error
        if result.prune is not None:
            self.result.prune = result.prune.report.as_dict()

    def _hooks(
        self, stage: str, commands: tuple[str, ...], extra: dict[str, str] | None = None
    ) -> None:
        env = {**os.environ, "CAIRN_JOB": self.job.name, **(extra or {})}
        for i, command in enumerate(commands, 1):
            try:
                proc = subprocess.run(
                    ["/bin/sh", "-c", command],
                    stdin=subprocess.DEVNULL,
                    stdout=2,  # stdout is for cairn's own (JSON) output
                    env=env,
                    check=False,
                )
            except OSError as e:
                raise JobFailed(f"{stage} hook {i} could not run: {e.strerror}") from None
            if proc.returncode != 0:
                raise JobFailed(f"{stage} hook {i} exited with status {proc.returncode}")

    def _after(self) -> None:
        snap = self.result.snapshot
        extra = {"CAIRN_JOB_STATUS": self.result.status}
        if snap is not None and snap.id:
            extra["CAIRN_SNAPSHOT"] = snap.id
        try:
            self._hooks("after", self.job.hooks.after, extra)
        except JobFailed as e:
            self._fail(str(e))

    def _ping(self, event: str, body: str = "") -> None:
        if self.job.healthcheck:
            try:
                problem = ping(self.job.healthcheck, event, body)
            except Exception as e:  # a monitor problem must never fail the backup
                problem = f"healthcheck {event} ping failed: {type(e).__name__}: {e}"
            if problem:
                self.warn(problem)
