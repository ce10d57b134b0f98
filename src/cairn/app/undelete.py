"""The `repair undelete` use case: the repository made again what it was at a past time, from
the object versions of its bucket, by adding versions only (cairn.ops.undelete)."""

from __future__ import annotations

from cairn.app.context import RepoSpec, Session, open_session
from cairn.app.events import Events
from cairn.app.records import record_run
from cairn.core.errors import UsageError
from cairn.ops.undelete import UndeleteReport, apply_undelete
from cairn.repo.repository import Repository
from cairn.storage.versions import ENABLED, AsOfStorage

__all__ = ["UndeleteReport", "undelete"]


def undelete(spec: RepoSpec, events: Events, dry_run: bool = False) -> UndeleteReport:
    """Opens the repository as of ``spec.store.as_of`` (its keys and config of then: the
    password must open it), then restores and hides what changed since, on the store as it
    is now."""
    when = spec.store.as_of
    if when is None:
        raise UsageError("repair undelete needs --as-of TIME: the time to go back to")
    session = open_session(spec)
    view = session.repo.storage
    assert isinstance(view, AsOfStorage)  # as_of is set: wrap_backend made the view
    store = view.inner
    versions = store.versions
    assert versions is not None  # the view exists only over a store with versions
    status = versions.status()
    if status != ENABLED:
        raise UsageError(
            f"repair undelete: versioning of the bucket is {status}, not enabled: a copy or a "
            "delete would replace the version without an id, and lose it"
        )
    then = session.repo
    repo = Repository(store, then.key, then.config)
    repo.key_id, repo.on_notice = then.key_id, then.on_notice
    repo.request_threads = then.request_threads
    report = apply_undelete(repo, versions, when, events, dry_run=dry_run)
    if not dry_run and (report.restored or report.hidden):
        run = Session(spec, repo, session.meter, session.started)
        report.requests = record_run(run, "repair undelete")
    else:
        report.requests = session.usage()
    return report
