"""The restore use case: a snapshot, or a part of it, into a directory.

The snapshot is resolved before the index is loaded (a backup finishing meanwhile could make
``latest`` a snapshot whose blobs an index loaded earlier lacks). Then the restore streams: the
trees are read and the files written as the work goes, with nothing of the plan kept.

Data packs may be in an archive class (GLACIER, DEEP_ARCHIVE), where a read answers that the
object is archived until the store has made a temporary copy of it. Only then does the restore
plan in full first, find the archived packs among those it reads (one listing of data/),
request copies of them, and either return pending (run again later: nothing is requested
twice) or wait for them; then it restores from that plan. It does so:

- at once when the repository's data is stored in an archive class (``--storage-class``);
- when the first pack the restore reads is archived, or restored from the archive, which one
  HEAD request asks before anything is read or any file written (only directories, links and
  other entries before the first file with data may have been made, and are made again);
- when a later read answers that its pack is archived (packs moved to an archive class by a
  lifecycle rule, or by a backup with another --storage-class). The restore stops then: no
  further file is started, a file whose data could not all be read is removed, files written
  completely stay, no directory gets its metadata yet. Once the copies are readable the
  restore runs again from the start, and overwrites what the first run wrote. Warnings the
  first run gave may be given again by the second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cairn.app.budget import restore_budget
from cairn.app.context import Session
from cairn.app.events import Events, NullEvents
from cairn.app.pricing import pricing, restore_reading
from cairn.core.errors import Interrupted, ObjectArchived, StorageError, UsageError
from cairn.core.units import format_duration
from cairn.model.node import DIR, Node
from cairn.model.snapshot import Snapshot
from cairn.ops.cost.prices import Provider
from cairn.ops.filter_patterns import PatternList
from cairn.ops.restore import (
    Entry,
    Planner,
    Read,
    RestoreOptions,
    RestoreSummary,
    Selection,
    Tally,
    reads,
    restore_entries,
    zero_blob,
)
from cairn.ops.restore.count import EntryCounter, summary_totals
from cairn.ops.snapshots import SnapshotFilter, resolve
from cairn.ops.thaw import (
    POLL_SECONDS,
    ThawOptions,
    ThawReport,
    packs_of,
    request_thaw,
    wait_for_thaw,
)
from cairn.repo import layout
from cairn.storage.archive import (
    ARCHIVE_CLASSES,
    READABLE,
    RESTORE_TIERS,
    ArchiveStore,
)

READ_ORDERS = ("pack", "file")

__all__ = [
    "READ_ORDERS",
    "RESTORE_TIERS",
    "NullRestoreEvents",
    "RestoreEvents",
    "RestoreRequest",
    "RestoreResult",
    "RestoreSummary",
    "Thaw",
    "ThawReport",
    "ThawRequest",
    "restore",
]


@dataclass(frozen=True)
class ThawRequest:
    """How archived packs are restored before the restore reads them."""

    wait: bool = False  # wait for the copies (else the restore returns, pending)
    tier: str = "Standard"  # Expedited, Standard or Bulk
    days: int = 7  # how long the copies stay readable
    provider: str | None = None  # a price table's key; None: $CAIRN_PROVIDER or by the URL
    prices: str | None = None  # a TOML file overriding the tables; None: $CAIRN_PRICES


@dataclass(frozen=True)
class RestoreRequest:
    snapshot: str  # "latest", an id, or a unique prefix of one
    target: str  # the directory to restore into
    path: str = "/"  # what of the snapshot: a directory (its contents) or a file
    filter: SnapshotFilter | None = None  # which snapshots "latest" chooses from
    include: tuple[str, ...] = ()  # patterns: restore only matching paths
    exclude: tuple[str, ...] = ()  # patterns: skip matching paths
    verify: bool = False  # read the restored files back and compare them
    threads: int | None = None  # threads writing files (None: the backend's default)
    read_order: str | None = None  # "pack" or "file" (None: the backend's default)
    thaw: ThawRequest = field(default_factory=ThawRequest)


@dataclass(frozen=True)
class Thaw:
    """Archived packs the restore reads, and what was requested for them."""

    report: ThawReport
    provider: Provider  # whose prices the report's cost is at
    pricing: str  # why that provider


@dataclass
class RestoreResult:
    snapshot: str  # the snapshot's id
    target: str
    summary: RestoreSummary | None  # None: nothing restored yet, archived data is pending
    thaw: Thaw | None = None  # when the restore had to look for archived packs

    @property
    def pending(self) -> bool:
        return self.summary is None


class RestoreEvents(Events, Protocol):
    def thawing(self, thaw: Thaw) -> None:
        """Archived packs must be restored before the restore can read them: what was found
        and requested (before waiting for them, or returning pending)."""


class NullRestoreEvents(NullEvents):
    def __init__(self) -> None:
        super().__init__()
        self.thaws: list[Thaw] = []

    def thawing(self, thaw: Thaw) -> None:
        self.thaws.append(thaw)


INTERRUPTED = (
    "interrupted: the restore is incomplete (the files written so far stay, directories may "
    "lack their metadata); run it again to finish: it writes every file again"
)


def restore(session: Session, request: RestoreRequest, events: RestoreEvents) -> RestoreResult:
    try:
        return _restore(session, request, events)
    except KeyboardInterrupt:
        raise Interrupted(INTERRUPTED) from None


def _restore(session: Session, request: RestoreRequest, events: RestoreEvents) -> RestoreResult:
    repo = session.repo
    snap = resolve(repo, request.snapshot, request.filter)
    repo.load_index()  # after the snapshot: a newer one may use newer index objects
    defaults = session.defaults
    pack_order, gap = restore_reading(session.url, request.thaw.provider, request.thaw.prices)
    if request.read_order is not None:
        if request.read_order not in READ_ORDERS:
            raise UsageError(f"unknown read order {request.read_order!r} (pack or file)")
        pack_order = request.read_order == "pack"
    budget = restore_budget(
        session.spec.store.memory_limit, request.threads or defaults.restore_threads
    )
    events.status(budget.describe())
    options = RestoreOptions(
        include=PatternList(request.include),
        exclude=PatternList(request.exclude),
        verify=request.verify,
        workers=budget.threads,
        small_file_workers=defaults.small_file_threads,
        pack_order=pack_order,
        read_gap=gap,
    )
    thaw_options = ThawOptions(days=request.thaw.days, tier=request.thaw.tier)
    archive = repo.storage.archive
    run = _Run(session, snap, request, options, events)
    if archive is None:
        return run.result(run.stream())
    if session.spec.store.s3.storage_class not in ARCHIVE_CLASSES:
        try:
            return run.result(run.stream(archive))
        except ObjectArchived as e:
            events.status(f"{e.name} is archived: finding the archived packs this restore reads")
    return run.thawed(archive, thaw_options, session.url)


class _Run:
    def __init__(
        self,
        session: Session,
        snap: Snapshot,
        request: RestoreRequest,
        options: RestoreOptions,
        events: RestoreEvents,
    ) -> None:
        self.repo = session.repo
        self.tree_threads = session.defaults.tree_threads
        self.snap = snap
        self.request = request
        self.options = options
        self.events = events

    def result(self, summary: RestoreSummary | None, thaw: Thaw | None = None) -> RestoreResult:
        return RestoreResult(self.snap.id, self.request.target, summary, thaw)

    def _planner(self, tally: Tally) -> Planner:
        selection = Selection(self.options.include, self.options.exclude)
        return Planner(self.repo, selection, tally.tree_problem, self.tree_threads)

    def stream(self, archive: ArchiveStore | None = None) -> RestoreSummary:
        """The restore as it goes. With ``archive``: stops with ObjectArchived, before any
        file is written if the first pack read is archived, else at the first archived read."""
        tally = Tally(self.events)
        planner = self._planner(tally)
        node, path = planner.top(self.snap, self.request.path)
        entries = planner.entries(node, path)
        check = _readable(archive) if archive is not None else None
        counter = self._totals(node, path)
        try:
            return self._execute(entries, tally, archive is not None, check, _root(node, path))
        finally:
            if counter is not None:
                counter.stop()

    def _totals(self, node: Node, path: bytes) -> EntryCounter | None:
        """Starts the restore's phase with its total: the snapshot's summary when it is
        restored whole, else counted by a walk of its trees on a thread (returned)."""
        o = self.options
        whole = self.request.path in ("", "/") and not o.include.patterns and not o.exclude.patterns
        totals = summary_totals(self.snap) if whole else None
        if totals is not None:
            self.events.start("restore", *totals)
            return None
        self.events.start("restore")
        quiet = Tally(NullEvents())  # the restore itself reports what cannot be read
        counter = EntryCounter(self._planner(quiet).entries(node, path))
        counter.start(self.events)
        return counter

    def thawed(self, archive: ArchiveStore, options: ThawOptions, url: str) -> RestoreResult:
        """The restore planned in full, the archived packs it reads restored first."""
        tally = Tally(self.events)
        planner = self._planner(tally)
        node, path = planner.top(self.snap, self.request.path)
        entries = list(planner.entries(node, path))
        want = self.request.thaw
        provider, why = pricing(url, want.provider, want.prices)
        o = self.options
        repo = self.repo
        planned = reads(
            entries, repo.index.get, o.pack_order, o.read_gap, zero_blob(repo), o.window_places
        )
        needed = packs_of(planned)
        thaw = Thaw(request_thaw(archive, needed, options, provider), provider, why)
        if thaw.report.pending:
            self.events.thawing(thaw)
            if not want.wait:
                return self.result(None, thaw)
            every = format_duration(POLL_SECONDS[options.tier])
            self.events.status(f"waiting for the restored copies (checking every {every})")
            wait_for_thaw(archive, thaw.report, options)
            self.events.status("the restored copies are readable: restoring")
        self.events.start("restore", *EntryCounter(entries).count())
        return self.result(self._execute(entries, tally, False, None, _root(node, path)), thaw)

    def _execute(
        self,
        entries: Iterable[Entry],
        tally: Tally,
        stop: bool,
        check: Callable[[Read], None] | None,
        root: Entry | None,
    ) -> RestoreSummary:
        return restore_entries(
            self.repo,
            entries,
            self.request.target,
            self.options,
            tally,
            stop_when_archived=stop,
            before_reading=check,
            root=root,
        )


def _root(node: Node, path: bytes) -> Entry | None:
    """The directory the target stands for, when a directory below the snapshot's root is
    restored: its contents go in the target, which gets its metadata (mode, owner, times,
    xattrs) as every directory restored does."""
    if node.type != DIR or not path:
        return None
    return Entry(path, (), node)


def _readable(archive: ArchiveStore) -> Callable[[Read], None]:
    """A check of the pack a read is from: ObjectArchived if it is in an archive class (even
    with a readable copy: the restore's other packs may have none)."""

    def check(read: Read) -> None:
        name = layout.pack_name(read.pack.id.hex())
        try:
            state = archive.restore_status(name)
        except StorageError:
            return  # the read itself will tell
        if state != READABLE:
            raise ObjectArchived(name)

    return check
