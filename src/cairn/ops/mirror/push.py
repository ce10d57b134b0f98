"""A push (docs/mirror.md §5): the source read and hashed, the plan run against the store
(server-side copies, uploads, copies of what this push uploaded), generations committed at
checkpoints and at the end, then the objects of deleted files removed or moved to the trash.

Every committed generation is complete: an object is written before any manifest names it,
and a file whose object could not be written keeps its committed entry (or none). Uploads
done since the last commit are recorded in the local state, so an interrupted push resumes
without sending them again."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cairn.core.errors import ObjectMissing
from cairn.core.overlap import Overlap
from cairn.model.node import FILE
from cairn.ops.mirror.codec import Codec
from cairn.ops.mirror.commit import next_generation
from cairn.ops.mirror.manifest import (
    Entry,
    Head,
    ManifestError,
    apply,
    decode_head,
    diff,
    encode_head,
)
from cairn.ops.mirror.piececache import CachedPieces
from cairn.ops.mirror.planner import Plan, plan
from cairn.ops.mirror.reader import (
    AREA,
    HEADS,
    LATEST,
    head_path,
    load_manifest,
    newest_head,
    piece_path,
    read_head,
)
from cairn.ops.mirror.reconcile import Reconciled, reconcile
from cairn.ops.mirror.scan import FileChanged, Scanned, Unreadable
from cairn.ops.mirror.source import Source, keep_unreadable, read_source
from cairn.ops.mirror.state import MirrorState
from cairn.ops.mirror.upload import upload
from cairn.storage.base import Storage
from cairn.storage.objects import ObjectStore

TRASH = f"{AREA}/trash"
COMMIT_ATTEMPTS = 8  # commits lost to other pushes before this one gives up
# The `latest` hint is rewritten at every compaction (before older heads are deleted) and when
# it lags this many generations: a reader walks the heads from the hint onward, so a hint a few
# generations old costs a pull a few GETs, and saves the push of one changed file a PUT.
HINT_LAG = 16
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PushOptions:
    host: str
    created: Callable[[], str]  # the time a head records, RFC 3339
    workers: int = 4  # files hashed at once
    connections: int = 8  # objects written at once
    checksum: bool = False
    delete: bool = False
    keep_deleted_days: int | None = None
    cold: bool = False
    prefix_len: int = 0
    checkpoint_bytes: int = 4 << 30
    checkpoint_seconds: float = 300.0
    dry_run: bool = False
    reconcile: bool = False
    codec: Codec | None = None  # an encrypted mirror's; None: a plain one's for prefix_len


@dataclass(slots=True)
class PushResult:
    generation: int | None = None  # the generation committed last (None: none at all)
    committed: bool = False  # whether this push committed anything
    entries: int = 0
    files: int = 0
    bytes: int = 0
    files_read: int = 0
    bytes_read: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    copied: int = 0
    resumed: int = 0  # uploads an interrupted push had done
    metadata_only: int = 0  # entries whose metadata alone changed
    removed: int = 0  # objects deleted (--delete)
    trashed: int = 0  # objects moved to the trash (--keep-deleted)
    purged: int = 0  # trash objects past their days, deleted
    kept: int = 0  # objects of deleted files left in place (no --delete)
    checkpoints: int = 0
    conflicts: int = 0  # commits another push made first, rebased upon
    unreadable: list[Unreadable] = field(default_factory=list)
    plan: Plan | None = None
    reconciled: Reconciled | None = None


class _Run:
    """One push's moving parts: what is committed, what the source holds now, what is done."""

    def __init__(
        self,
        store: Storage,
        objects: ObjectStore,
        root: bytes,
        state: MirrorState,
        pieces: CachedPieces,
        opts: PushOptions,
    ) -> None:
        self.store, self.objects, self.root = store, objects, root
        self.state, self.pieces, self.opts = state, pieces, opts
        self.codec = opts.codec or Codec(opts.prefix_len)
        self.result = PushResult()
        self.head: Head | None = None
        self.committed: dict[bytes, Entry] = {}
        self.scanned: dict[bytes, Scanned] = {}

    # ------------------------------------------------------------------ reading

    def read(self) -> tuple[Source, dict[bytes, Entry]]:
        cached = self.state.head()
        known = decode_head(cached) if cached else None
        self.head = newest_head(self.store, known, self.codec)
        self.committed = load_manifest(self.pieces, self.head, self.codec) if self.head else {}
        source = read_source(
            self.root, self.state, workers=self.opts.workers, checksum=self.opts.checksum
        )
        keep_unreadable(self.committed, source)
        self.scanned = source.scanned
        return source, source.entries

    # ------------------------------------------------------------------ writing objects

    def key(self, path: bytes) -> str:
        return self.codec.key(path)

    def run(self, the_plan: Plan, new: dict[bytes, Entry]) -> None:
        resumed = self.state.uploads()
        salts = self.state.upload_salts()
        r = self.result
        done: dict[bytes, Entry] = {}
        since_bytes, since = 0, time.monotonic()

        def finished(entry: Entry, etag: str, n: int = 0) -> None:
            nonlocal since_bytes, since
            entry.etag = etag
            assert entry.hash is not None
            self.state.uploaded(entry.path, entry.hash, etag, entry.salt)
            done[entry.path] = entry
            since_bytes += n
            if since_bytes >= self.opts.checkpoint_bytes or (
                time.monotonic() - since >= self.opts.checkpoint_seconds
            ):
                self.checkpoint(done, new)
                since_bytes, since = 0, time.monotonic()

        def resumable(entry: Entry) -> str | None:
            known = resumed.get(entry.path)
            if not known or known[0] != entry.hash:
                return None
            if self.codec.cipher is not None:  # the salt of the object written
                if (salt := salts.get(entry.path)) is None:
                    return None
                entry.salt = salt
            return known[1]

        def copy(job: tuple[Entry, bytes]) -> tuple[Entry, str]:
            entry, src = job
            if (etag := resumable(entry)) is not None:
                return entry, etag
            ctype = self.codec.content_type(entry.path)
            return entry, self.objects.server_copy(
                self.key(src), self.key(entry.path), content_type=ctype
            )

        def send(entry: Entry) -> tuple[Entry, str | BaseException]:
            if (etag := resumable(entry)) is not None:
                return entry, etag
            try:
                up = upload(
                    self.objects,
                    self.root,
                    self.scanned[entry.path],
                    codec=self.codec,
                    cold=self.opts.cold,
                    journals=self.state,
                )
            except (FileChanged, OSError) as e:
                return entry, e
            entry.salt = up.salt
            return entry, up.etag

        failed: set[bytes] = set()
        for entry, src in the_plan.copy:  # a copy is its source's object, salt and all
            entry.salt = self.committed[src].salt
        threads = max(1, self.opts.connections)
        with Overlap(threads, "cairn-push") as pool:

            def ordered(fn: Callable[[Any], _T], jobs: Iterable[Any]) -> Iterator[_T]:
                """``fn`` of each job in order, a few ahead: not a future per file at once,
                which for a million files is more memory than their entries."""
                for _job, pending in pool.map(fn, jobs, ahead=4 * threads):
                    yield pending.result()

            for entry, etag in ordered(copy, the_plan.copy):
                r.copied += 1
                finished(entry, etag)
            for entry, outcome in ordered(send, the_plan.upload):
                if isinstance(outcome, BaseException):
                    failed.add(entry.path)
                    self._give_up(entry, outcome, new)
                    continue
                if entry.path in resumed and resumed[entry.path][1] == outcome:
                    r.resumed += 1
                else:
                    r.uploaded += 1
                    r.uploaded_bytes += entry.size
                finished(entry, outcome, entry.size)
            later = [(e, s) for e, s in the_plan.copy_after if s not in failed]
            for entry, src in later:
                entry.salt = new[src].salt
            for entry, src in the_plan.copy_after:
                if src in failed:  # its content never went up: it goes up itself
                    entry_, outcome = send(entry)
                    if isinstance(outcome, BaseException):
                        self._give_up(entry_, outcome, new)
                    else:
                        r.uploaded += 1
                        r.uploaded_bytes += entry.size
                        finished(entry, outcome, entry.size)
            for entry, etag in ordered(copy, later):
                r.copied += 1
                finished(entry, etag)

    def _give_up(self, entry: Entry, error: BaseException, new: dict[bytes, Entry]) -> None:
        """A file whose object could not be written as hashed: reported; the manifest keeps
        nothing for it if the object may have been overwritten, its committed entry else."""
        message = (
            str(error)
            if isinstance(error, FileChanged)
            else (getattr(error, "strerror", None) or str(error))
        )
        self.result.unreadable.append(Unreadable(entry.path, message))
        before = self.committed.get(entry.path)
        if isinstance(error, FileChanged) or before is None or before.type != FILE:
            del new[entry.path]
        else:
            new[entry.path] = before

    # ------------------------------------------------------------------ committing

    def checkpoint(self, done: dict[bytes, Entry], new: dict[bytes, Entry]) -> None:
        """Commits the committed manifest plus the files written so far (with the
        directories above them), so that an interrupted push loses little."""
        partial = dict(self.committed)
        for path, entry in done.items():
            partial[path] = entry
            parent = path
            while b"/" in parent:
                parent = parent.rpartition(b"/")[0]
                if parent in new and partial.get(parent) != new[parent]:
                    partial[parent] = new[parent]
        self.commit(partial)
        self.result.checkpoints += 1

    def commit(self, new: dict[bytes, Entry]) -> None:
        """Makes ``new`` the next generation (nothing when it equals the committed one). A
        generation another push committed first is read, this push's changes are applied on
        top of it, and the next number is tried."""
        for _attempt in range(COMMIT_ATTEMPTS):
            nxt = next_generation(
                self.head,
                self.committed,
                new,
                created=self.opts.created(),
                host=self.opts.host,
                seal=self.codec.seal_piece,
            )
            if nxt is None:
                return
            for piece in nxt.pieces:
                self.store.write(piece_path(piece.hash), piece.data)
            encoded = encode_head(nxt.head)
            stored = self.codec.seal_head(encoded)
            if self.objects.create(head_path(nxt.head.generation), stored):
                previous = self.head
                self.head, self.committed = nxt.head, new
                for piece in nxt.pieces:
                    self.pieces.keep(piece.hash, piece.data)
                generation = nxt.head.generation
                if not nxt.head.deltas or generation - self.state.hint() >= HINT_LAG:
                    self.objects.put(LATEST, str(generation).encode(), content_type="text/plain")
                    self.state.hinted(generation)
                self.state.committed(encoded)
                self.result.committed = True
                self._collect(previous, nxt.head)
                return
            new = self._rebase(new)
        raise ManifestError(
            f"{COMMIT_ATTEMPTS} other pushes committed while this one tried to: try again"
        )

    def _rebase(self, new: dict[bytes, Entry]) -> dict[bytes, Entry]:
        """This push's changes on top of the generation another push committed: paths both
        changed take this push's entry (what its source holds now), and an object the other
        push overwrote since is written again."""
        self.result.conflicts += 1
        mine = diff(self.committed, new)
        theirs_head = newest_head(self.store, self.head, self.codec)
        if theirs_head is None:  # pragma: no cover - a head cannot vanish
            raise ManifestError("the generation another push committed has disappeared")
        theirs = load_manifest(self.pieces, theirs_head, self.codec)
        rebased = dict(theirs)
        apply(rebased, mine)
        for entry in mine.put:
            if entry.type != FILE or self.committed.get(entry.path) == theirs.get(entry.path):
                continue  # only this push changed it: its object is as this push left it
            found = self.objects.head(self.key(entry.path))
            if found is None or found.etag != entry.etag:
                scanned = self.scanned.get(entry.path)
                if scanned is None:
                    rebased.pop(entry.path, None)
                    continue
                up = upload(self.objects, self.root, scanned, codec=self.codec, cold=self.opts.cold)
                entry.etag, entry.salt = up.etag, up.salt
        for path in list(rebased):  # a directory the other push removed, below which
            parent = path  # this push added a file, comes back
            while b"/" in parent:
                parent = parent.rpartition(b"/")[0]
                if parent not in rebased and parent in new:
                    rebased[parent] = new[parent]
        self.head, self.committed = theirs_head, theirs
        return rebased

    def _collect(self, previous: Head | None, head: Head) -> None:
        """After a commit that compacted the manifest, the heads before ``previous`` and the
        pieces only they name are garbage (docs/mirror.md §5: what neither the new head nor
        its parent references). Read from the generation last collected on; a state that never
        collected (new, or lost) lists the heads instead, and so finds every old one."""
        self.pieces.retain([head.base.hash, *(d.hash for d in head.deltas)])
        if head.deltas or previous is None:
            return
        keep = {ref.hash for h in (previous, head) for ref in (h.base, *h.deltas)}
        if collected := self.state.collected_below():
            below: list[int] = list(range(max(1, collected), previous.generation))
        else:  # a state that never collected (new, or lost): the heads the store lists
            below = [g for g in listed_heads(self.store) if g < previous.generation]
        for generation in below:
            try:
                old = read_head(self.store, generation, self.codec)
            except ManifestError:
                old = None
            if old is not None:
                for ref in (old.base, *old.deltas):
                    if ref.hash not in keep:
                        self.store.delete(piece_path(ref))
                self.store.delete(head_path(generation))
        self.state.collect_from(previous.generation)
        # uploads in parts that no push will resume (not in this source's state, and a day
        # old: another source's push may be resuming a younger one)
        if self.objects.multipart is not None:
            day_ago = datetime.now(UTC) - timedelta(days=1)
            self.objects.abort_stale("", keep=self.state.upload_ids(), before=day_ago)

    # ------------------------------------------------------------------ deleted files

    def remove(self, gone: list[Entry]) -> None:
        r = self.result
        if not self.opts.delete and self.opts.keep_deleted_days is None:
            r.kept = len(gone)
            return
        generation = self.head.generation if self.head else 0
        for entry in gone:
            if entry.path in self.committed and self.committed[entry.path].type == FILE:
                continue  # another push brought it back
            key = self.key(entry.path)
            if self.opts.keep_deleted_days is not None:
                try:
                    self.objects.server_copy(
                        key,
                        f"{TRASH}/{generation:020d}/{key}",
                        content_type=self.codec.content_type(entry.path),
                    )
                except ObjectMissing:  # already gone: nothing to keep
                    continue
                r.trashed += 1
            else:
                r.removed += 1
            self.store.delete(key)
        if self.opts.keep_deleted_days is not None and r.trashed:
            self.state.trashed(generation, time.time())

    def find_trash(self) -> None:
        """A new state (lost, or the first of this source) knows no trash generation: one
        listing of the trash finds those no state records, each dated by the `created` of its
        head (of the first later head the store lists, its own being collected; or now), so
        that they are purged after DAYS as the ones this state made."""
        known = {g for g, _ in self.state.trash()}
        found: set[int] = set()
        for name, _size in self.store.list(f"{TRASH}/"):
            generation = name[len(TRASH) + 1 :].partition("/")[0]
            if generation.isdigit() and int(generation) not in known:
                found.add(int(generation))
        if not found:
            return
        heads = listed_heads(self.store)
        dates: dict[int, float] = {}
        for generation in sorted(found):
            i = bisect.bisect_left(heads, generation)
            when = time.time()
            if i < len(heads):
                if heads[i] not in dates:
                    dates[heads[i]] = _head_time(self.store, heads[i], self.codec, when)
                when = dates[heads[i]]
            self.state.trashed(generation, when)

    def purge(self) -> None:
        """Deletes the trash generations older than --keep-deleted days."""
        days = self.opts.keep_deleted_days
        if days is None:
            return
        limit = time.time() - days * 86400
        for generation, when in self.state.trash():
            if when > limit:
                continue
            for name, _size in list(self.store.list(f"{TRASH}/{generation:020d}/")):
                self.store.delete(name)
                self.result.purged += 1
            self.state.purged(generation)


def listed_heads(store: Storage) -> list[int]:
    """The generations of the heads the store lists, in order: one listing."""
    found = []
    for name, _size in store.list(f"{HEADS}/"):
        generation = name[len(HEADS) + 1 :]
        if generation.isdigit():
            found.append(int(generation))
    return sorted(found)


def _head_time(store: Storage, generation: int, codec: Codec, default: float) -> float:
    try:
        head = read_head(store, generation, codec)
        return default if head is None else datetime.fromisoformat(head.created).timestamp()
    except (ManifestError, ValueError):
        return default


def push(
    store: Storage,
    objects: ObjectStore,
    root: bytes,
    state: MirrorState,
    pieces: CachedPieces,
    opts: PushOptions,
) -> PushResult:
    """Pushes the directory ``root`` to the mirror on ``store`` (whose marker the caller has
    checked). ``pieces`` is ``store`` with the local piece cache."""
    run = _Run(store, objects, root, state, pieces, opts)
    r = run.result
    new_state = state.head() is None  # lost, or the first push of this source
    source, new = run.read()
    r.unreadable.extend(source.unreadable)
    r.files_read, r.bytes_read = source.files_read, source.bytes_read
    the_plan = plan(run.committed, new)
    r.plan = the_plan
    for path, etag in the_plan.unchanged.items():  # the same object: its ETag and salt
        new[path].etag, new[path].salt = etag, run.committed[path].salt
    if opts.reconcile:
        r.reconciled = reconcile(store, objects, root, run.committed, new, the_plan, run.key)
    r.metadata_only = sum(
        1
        for p, e in new.items()
        if (old := run.committed.get(p)) is not None
        and old != e
        and (e.type != FILE or p in the_plan.unchanged)
    )
    if not opts.dry_run:
        if new_state and (opts.delete or opts.keep_deleted_days is not None):
            run.find_trash()
        run.purge()
        run.run(the_plan, new)
        run.commit(new)
        run.remove(the_plan.remove)
        failed = {u.path for u in r.unreadable}
        state.update(
            (s for p, s in source.scanned.items() if p not in failed),
            [p for p in state.paths() if p not in new],
        )
    else:
        r.kept = 0 if opts.delete else len(the_plan.remove)
    r.generation = run.head.generation if run.head else None
    r.entries = len(new)
    r.files = sum(1 for e in new.values() if e.type == FILE)
    r.bytes = sum(e.size for e in new.values() if e.type == FILE)
    return r
