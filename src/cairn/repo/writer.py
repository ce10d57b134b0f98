"""Adding blobs to a repository: a scoped writer.

    with repo.writer(uploads=4, journal=journal) as w:
        w.save_blob(DATA_BLOB, chunk)
        ...
        w.flush()          # every open pack stored, an index object for the new packs

Blobs go into packs (repo/packer.py), uploaded ``uploads`` at a time; a stored pack enters
the in-memory index at once (so its blobs are not stored again) and an index object is
written every ``INDEX_CHECKPOINT_PACKS`` packs or ``INDEX_OBJECT_BLOBS`` blobs, and by
``flush``. Leaving the ``with`` block stops the uploads; what was not flushed is left to the
pack journal (docs/format.md §11.3). With a journal, packs an interrupted writer on this
machine stored are first adopted (unless a running prune condemned them, §12.2).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING

from cairn.core.errors import ObjectMissing
from cairn.repo import layout
from cairn.repo.compress import frame_into
from cairn.repo.index import (
    INDEX_OBJECT_BLOBS,
    PackColumns,
    PackRecord,
    blob_count,
    encode_index,
)
from cairn.repo.journal import PackJournal
from cairn.repo.packer import Packer, Spool
from cairn.storage.base import SpooledContent

if TYPE_CHECKING:
    from cairn.repo.repository import Repository

INDEX_CHECKPOINT_PACKS = 64


@dataclass
class SaveResult:
    id: bytes
    new: bool
    stored: int  # encrypted bytes added to a pack (0 when the blob was already known)


class Writer:
    def __init__(
        self,
        repo: Repository,
        *,
        uploads: int = 2,
        dry_run: bool = False,
        journal: PackJournal | None = None,
        remember_packs: bool = False,
        spool: Spool | None = None,
        first_pack_size: int | None = None,
    ) -> None:
        """``dry_run``: packs are built and counted, nothing is stored. ``remember_packs``:
        keep every written pack's record in ``written_packs`` (prune needs them; a backup of
        millions of files must not hold them all). ``spool``: data packs are built in
        temporary files, not in memory (repo/packer.py). ``first_pack_size``: the first data pack
        is finished at that size, the next ones at double the one before (repo/packer.py)."""
        self.repo = repo
        self.dry_run = dry_run
        self._journal = None if dry_run else journal
        self._remember_packs = remember_packs
        self._uploads = uploads
        self.spool = spool
        self.first_pack_size = first_pack_size
        self._lock = threading.Lock()
        self._pending: set[bytes] = set()  # blobs in packs not stored yet
        # stored packs no index object lists yet
        self._unindexed: list[PackRecord | PackColumns] = []
        self.written_indexes: list[str] = []  # index objects this writer wrote
        # the packs they list, if remembered
        self.written_packs: list[PackRecord | PackColumns] = []
        self._packer: Packer | None = None
        # packs another process of this backup sealed and this writer stored: in the in-memory
        # index from ``flush`` on (``store_sealed``)
        self._sealed: list[PackColumns] = []

    def __enter__(self) -> Writer:
        if self._journal is not None:
            self._adopt(self._journal)
        self._packer = self._new_packer()
        return self

    def _new_packer(self) -> Packer:
        repo = self.repo
        return Packer(
            repo.storage,
            repo.key.encryption,
            repo.config.pack_size,
            self._pack_stored,
            uploads=self._uploads,
            dry_run=self.dry_run,
            spool=self.spool,
            first_pack_size=self.first_pack_size,
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._packer is not None:
            self._packer.close()
            self._packer = None

    # ------------------------------------------------------------------ blobs
    def pending(self) -> list[bytes]:
        """The blobs in this writer's packs not stored yet."""
        with self._lock:
            return list(self._pending)

    def has_blob(self, blob_id: bytes) -> bool:
        return blob_id in self.repo.index

    def has_blobs(self, blob_ids: list[bytes]) -> list[bool]:
        """``has_blob`` of each id, all looked up at once."""
        return self.repo.index.contains_all(blob_ids)

    def save_blob(
        self, blob_type: int, data: bytes | memoryview, blob_id: bytes | None = None
    ) -> SaveResult:
        """Stores a blob unless the repository (or a pack being written) already has it."""
        packer = self._open_packer()
        if blob_id is None:
            blob_id = self.repo.blob_id(data)
        with self._lock:
            if blob_id in self._pending or blob_id in self.repo.index:
                return SaveResult(blob_id, False, 0)
            self._pending.add(blob_id)
        level = self.repo.config.compression_level or None
        stored = packer.add(blob_type, blob_id, frame_into(data, level), len(data))
        return SaveResult(blob_id, True, stored)

    def save_blobs(self, blob_type: int, datas: list[bytes]) -> list[SaveResult]:
        """``save_blob`` for several small blobs at once (one lock for the lot, and the open
        pack takes them in a row): one result each, in order. A blob that comes twice is
        stored once."""
        packer = self._open_packer()
        blob_id = self.repo.blob_id
        ids = [blob_id(d) for d in datas]
        index = self.repo.index
        pending = self._pending
        new: list[int] = []
        with self._lock:
            maybe = [i for i, b in enumerate(ids) if b not in pending]
            # the index searched once for the group
            known = index.contains_all([ids[i] for i in maybe])
            for i, k in zip(maybe, known, strict=True):
                if not k and ids[i] not in pending:  # (a blob twice in the group: once)
                    pending.add(ids[i])
                    new.append(i)
        stored = [0] * len(ids)
        if new:
            level = self.repo.config.compression_level or None
            # framed one after another in this thread's buffer: each copied out before the next
            payloads = [(ids[i], bytes(frame_into(datas[i], level)), len(datas[i])) for i in new]
            for i, n in zip(new, packer.add_many(blob_type, payloads), strict=True):
                stored[i] = n
        fresh = set(new)
        return [SaveResult(b, i in fresh, stored[i]) for i, b in enumerate(ids)]

    def copy_blob(self, blob_type: int, blob_id: bytes, payload: bytes, raw_length: int) -> int:
        """Adds an already framed (compressed) blob to a new pack even if the index knows it:
        prune's repacking. Returns the stored length (0 if it is already being copied)."""
        packer = self._open_packer()
        with self._lock:
            if blob_id in self._pending:
                return 0
            self._pending.add(blob_id)
        return packer.add(blob_type, blob_id, payload, raw_length)

    def store_sealed(self, record: PackColumns, data: bytes | SpooledContent) -> None:
        """Stores a data pack that another process of this backup filled and sealed (its
        reading process, cairn.ops.backup.reader_process), as this writer's own: uploaded with
        its packs, journaled, and listed in its index objects. Its blobs join the in-memory
        index at ``flush``, not before: that process deduplicates its own blobs, and adding
        them here as they come would re-sort the index arrays it shares with this one (a
        forked copy, whose pages stay shared only while neither writes them)."""
        self._open_packer().store_sealed(record, data, self._sealed_stored)

    def _sealed_stored(self, record: PackColumns) -> None:
        if self._journal is not None:
            self._journal.append(record)
        with self._lock:
            # (its encoded entry is kept only until its index object is written)
            self._sealed.append(replace(record, entry=None))
        self._unindexed_add(record)

    def flush(self) -> None:
        """Stores every open pack and writes an index object for all new packs."""
        self._open_packer().flush()
        with self._lock:
            sealed, self._sealed = self._sealed, []
        if sealed:
            self.repo.index.add_columns(sealed)
        self._write_index()

    @property
    def packs_written(self) -> int:
        return self._packer.packs_written if self._packer is not None else 0

    @property
    def tree_packs_written(self) -> int:
        return self._packer.tree_packs_written if self._packer is not None else 0

    # ------------------------------------------------------------------ inside
    def _open_packer(self) -> Packer:
        if self._packer is None:
            raise RuntimeError("the writer is used outside its with block")
        return self._packer

    def _adopt(self, journal: PackJournal) -> None:
        """Indexes packs that an interrupted backup uploaded but never listed in an index.

        A pack that a running prune condemned is not adopted: the prune found it in no index
        object and is about to delete it (docs/format.md §12.2). Its blobs are stored again
        if this backup needs them."""
        repo = self.repo
        adopted = []
        for record in journal.records():
            if repo.index.has_pack(record.info.id) or record.info.id in repo.excluded_packs:
                continue
            try:
                repo.storage.stat(layout.pack_name(record.info.id.hex()))
            except ObjectMissing:
                continue
            repo.index.add_pack(record)
            adopted.append(record)
        if adopted:
            repo.check_writable()
            repo.save_object(layout.INDEX, encode_index(adopted))
        journal.clear()

    def _pack_stored(self, record: PackRecord) -> None:
        if self._journal is not None:
            self._journal.append(record)
        self.repo.index.add_pack(record)
        with self._lock:
            for b in record.blobs:
                self._pending.discard(b.id)
        self._unindexed_add(record)

    def _unindexed_add(self, record: PackRecord | PackColumns) -> None:
        """A stored pack for the next index object, written once enough wait for one."""
        with self._lock:
            self._unindexed.append(record)
            checkpoint = (
                len(self._unindexed) >= INDEX_CHECKPOINT_PACKS
                or sum(blob_count(r) for r in self._unindexed) >= INDEX_OBJECT_BLOBS
            )
        if checkpoint:
            self._write_index()

    def _write_index(self) -> None:
        with self._lock:
            records, self._unindexed = self._unindexed, []
        if not records or self.dry_run:
            return
        self.repo.check_writable()
        names = self.repo.write_index(records)
        with self._lock:
            self.written_indexes.extend(names)
            if self._remember_packs:
                self.written_packs.extend(records)
        if self._journal is not None:
            self._journal.forget(records)
