"""The copy use case: snapshots from one repository into another, with other keys, at
another store (a second copy at another provider: the 3-2-1 rule). ops/copy does the work.

The source is only read (it is not locked: a copy reads as a restore does). The destination
is written as a backup writes it: under a lock of the prune protocol, through a writer whose
pack journal lets an interrupted copy's successor adopt the packs it stored, and with the
locks of an object lock extended before each snapshot is saved. Snapshots the
destination has a copy of already are not copied again (``original``, docs/format.md §8).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cairn.app.backup import lock_upkeep
from cairn.app.budget import write_budget
from cairn.app.context import RepoSpec, Session, open_session
from cairn.app.cost import copy_estimate
from cairn.app.events import Events, NullEvents
from cairn.app.passwords import PasswordSource
from cairn.app.records import record_run
from cairn.app.repositories import find_repository, has_password, named_reference, repo_spec
from cairn.app.tag import select_snapshots
from cairn.core.errors import Interrupted, UsageError
from cairn.model.snapshot import Snapshot
from cairn.ops.copy import CopiedSnapshot, Copier, CopyTotals, IdMap, copied_from, present
from cairn.ops.snapshots import SnapshotFilter, load_snapshots
from cairn.ops.writelock import writing
from cairn.repo.index import PackRecord
from cairn.repo.repository import Repository

__all__ = [
    "FROM_PASSWORD",
    "CopiedSnapshot",
    "CopyRequest",
    "CopyResult",
    "CopyTotals",
    "copy",
    "source_spec",
]

# how the source's password is given: its own flags and variables, so both can be set at once
FROM_PASSWORD = {
    "env": "CAIRN_FROM_PASSWORD",
    "flags": "--from-password-file, --from-password-command",
    "prompt": "source repository password",
}


@dataclass(frozen=True)
class CopyRequest:
    source: RepoSpec
    ids: Sequence[str] = ()  # ids, prefixes or latest; none: every snapshot of the filter
    filter: SnapshotFilter = field(default_factory=SnapshotFilter)


@dataclass
class CopyResult:
    snapshots: list[CopiedSnapshot]  # every snapshot chosen, oldest first
    totals: CopyTotals
    source: str  # the source's URL
    source_requests: dict[str, int]  # what was asked of the source's store
    requests: dict[str, int]  # of the destination's (its operation record's PUT included)
    cost: dict[str, Any] | None  # what those requests and the data added cost

    @property
    def copied(self) -> list[CopiedSnapshot]:
        return [c for c in self.snapshots if c.copy is not None]


def source_spec(
    url: str | None,
    password_file: str | None,
    password_command: str | None,
    key_hint: str | None,
    like: RepoSpec,
    config_path: str | None = None,
) -> RepoSpec:
    """The source of a copy: ``url`` (or $CAIRN_FROM_REPOSITORY; ``@NAME``: a repository of
    the configuration file), opened with its own password sources and the destination's store
    options, cache and notices (``like``)."""
    url = url or os.environ.get("CAIRN_FROM_REPOSITORY")
    if not url:
        raise UsageError("no source repository: use --from-repo or CAIRN_FROM_REPOSITORY")
    password = PasswordSource(file=password_file, command=password_command, **FROM_PASSWORD)
    spec = replace(like, url=url, password=password, key_hint=key_hint)
    name = named_reference(url)
    if name is None or (not url.startswith("@") and not _config_exists(config_path)):
        return spec
    load = importlib.import_module("cairn.config.load")  # the sources load only when used
    config = load.load_config(config_path or load.default_path())
    if not url.startswith("@") and name not in config.repositories:
        return spec
    named = find_repository(config, name)
    base = repo_spec(named)
    given = password_file or password_command
    return replace(
        base,
        password=base.password if has_password(named) and not given else password,
        key_hint=key_hint,
        use_cache=like.use_cache,
        notice=like.notice,
    )


def _config_exists(config_path: str | None) -> bool:
    load = importlib.import_module("cairn.config.load")
    return os.path.exists(config_path or load.default_path())


def copy(session: Session, request: CopyRequest, events: Events | None = None) -> CopyResult:
    """Copies the chosen snapshots of ``request.source`` that ``session``'s repository has
    no copy of, oldest first; each copy's parent is the copy of its parent, if there is one."""
    events = events or NullEvents()
    source = open_session(request.source)
    if source.repo.config.id == session.repo.config.id:
        raise UsageError("the source and the destination are the same repository")
    chosen = select_snapshots(source.repo, request.ids, request.filter)
    dst = session.repo
    have = copied_from(load_snapshots(dst))
    results = [CopiedSnapshot(s, present=present(have, s)) for s in chosen]
    totals = CopyTotals()
    todo = [r for r in results if r.present is None]
    if todo:
        _copy_all(session, source, todo, have, totals, events)
    requests = record_run(session, "copy") if todo else session.usage()
    return CopyResult(
        results,
        totals,
        source.url,
        source.usage(),
        requests,
        copy_estimate(source, session, source.usage(), requests, totals.bytes_stored),
    )


def _copy_all(
    session: Session,
    source: Session,
    todo: list[CopiedSnapshot],
    have: dict[str, str],
    totals: CopyTotals,
    events: Events,
) -> None:
    dst = session.repo
    budget = write_budget(
        session.spec.store.memory_limit,
        dst.config.pack_size,
        session.spec.store.uploads_for(session.url),
        readers=0,
        spool=session.defaults.spool_packs,
    )
    cache = session.cache_dir
    idmap = IdMap(cache / f"copy-ids-{source.repo.config.id}.sqlite" if cache else None)
    journal = session.journal()
    threads = max(2, source.defaults.request_threads)
    upkeep = lock_upkeep(session, dry_run=False)  # an object lock: the data kept locked
    try:
        with (
            writing(dst, "backup"),
            dst.writer(uploads=budget.uploads, journal=journal, spool=budget.spool) as writer,
        ):
            tree_packs: dict[bytes, PackRecord] = {}
            source.repo.load_index(tree_records=tree_packs)
            copier = Copier(source.repo, writer, idmap, threads, tree_packs, events)
            for item in todo:
                snap = item.source
                events.status(f"copying snapshot {snap.id[:8]} of {snap.time:%Y-%m-%d %H:%M:%S}")
                parent = have.get(snap.parent) if snap.parent else None
                done = copier.copy(snap, parent, functools.partial(_save, dst, upkeep))
                item.copy, item.totals, item.problems = done.copy, done.totals, done.problems
                totals.add(done.totals)
                have[snap.id] = done.copy.id
    except KeyboardInterrupt:
        kept = "the next copy adopts the packs stored so far" if journal else "nothing is kept"
        raise Interrupted(f"copy interrupted: {kept}") from None
    finally:
        idmap.close()


def _save(dst: Repository, upkeep: Callable[[], object] | None, snap: Snapshot) -> str:
    """Saves a copy; on a repository with an object lock, the locks of what it needs that
    would end before its own are extended first, as a backup extends them."""
    if upkeep is not None:
        upkeep()
    return dst.save_snapshot(snap.encode())
