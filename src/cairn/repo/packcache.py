"""Blobs read a pack at a time: one request per pack (or per range of its blobs), not per blob.

A walk of every snapshot's trees (prune, check) reads nearly every tree blob of the
repository, hundreds to a pack; read one by one, each is a GET and, on an object store, a round
trip (a prune that removed nothing cost several backups in requests). The first time a
``PackCache`` is asked for a blob of a pack, it reads every blob the pack's index record lists
there (as the index places them), in the ranges ``coalesce`` makes (through gaps of at most
``GAP`` bytes, at most ``RANGE_BYTES`` a request), and keeps their encrypted bytes. A blob is
opened only when asked for, by ``BlobReader.open``: authenticated, decrypted within the
format's bounds and checked against its length and id, exactly as a read of it alone.

Where the repository keeps copies of tree packs on this host (cairn.repo.objectcache), the
pack is first copied here whole (``fetch``), once, and its blobs read from the copy: no
request at all the next time.

Memory: at most ``budget`` bytes of encrypted blobs held (32 MiB by default; tree packs are
tens of MiB per TiB of data, docs/cost.md), plus the range being read. A blob is let go once
taken, unless ``keep`` (a walk that reads trees again: check, snapshot after snapshot). A pack
whose listed blobs do not fit in what is left of the budget when it is first needed is read
blob by blob, as is a blob let go or a pack no record lists: never more requests than blob by
blob, plus one per range. A range that cannot be read (a pack missing, or out of reach) is left
to the blobs' own reads, so what the caller gets is their error, as before; a short range (a
truncated pack) leaves the blobs past its end short, and opening them says so, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cairn.core.errors import CairnError
from cairn.repo import layout
from cairn.repo.blobreader import BlobReader
from cairn.repo.index import PackInfo, PackRecord
from cairn.repo.pack import BlobRef
from cairn.repo.ranges import coalesce

GAP = 64 << 10  # read through a gap this small between listed blobs (blobs no index lists)
RANGE_BYTES = 8 << 20  # one request reads at most this much (unless one blob is larger)
BUDGET = 32 << 20  # bytes of encrypted blobs held


class PackCache:
    """Blobs of ``blob_type``, found with ``reader``'s index, read a pack at a time; which
    blobs a pack holds is its record's in ``records`` (pack id -> record)."""

    def __init__(
        self,
        reader: BlobReader,
        blob_type: int,
        records: Mapping[bytes, PackRecord],
        *,
        keep: bool = False,
        budget: int = BUDGET,
        fetch: Callable[[str, int | None], bool] | None = None,
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        self.reader = reader
        self.blob_type = blob_type
        self.records = records
        self.keep = keep
        self.budget = budget
        # a pack copied to this host first, whole, when it can be (``Repository.fetch_pack``):
        # its blobs are then read from the copy; ``sizes``: pack name -> size, if known
        self.fetch = fetch
        self.sizes = sizes or {}
        self.requests = 0  # reads made of the store: ranges, and blobs read alone
        self.bytes_read = 0
        # blob id -> (pack id, offset, its encrypted bytes)
        self._held: dict[bytes, tuple[bytes, int, bytes]] = {}
        self._size = 0  # bytes held
        self._seen: set[bytes] = set()  # packs read, or left to be read blob by blob
        self._local: set[bytes] = set()  # packs read from a copy on this host

    def load(self, blob_id: bytes) -> bytes:
        """A blob's plaintext, as ``BlobReader.load`` gives it: the same checks, the same errors
        (NotFoundError if the index lacks it, IntegrityError if it is of another type or
        damaged)."""
        entry = self.reader.entry(blob_id, self.blob_type)
        pack = entry.pack
        if pack.id not in self._seen:
            self._seen.add(pack.id)
            self._read_pack(pack)
        held = self._held.get(blob_id) if self.keep else self._held.pop(blob_id, None)
        sealed = None
        if held is not None:
            if not self.keep:
                self._size -= len(held[2])
            if held[:2] == (pack.id, entry.offset):
                sealed = held[2]
        if sealed is None and pack.id not in self._local:
            self.requests += 1
            self.bytes_read += entry.length
        ref = BlobRef(blob_id, entry.offset, entry.length, entry.raw_length)
        return self.reader.open(pack, ref, sealed)

    def _read_pack(self, pack: PackInfo) -> None:
        """Holds the encrypted bytes of the blobs ``pack``'s record lists where the index
        places them, if they fit in the budget."""
        record = self.records.get(pack.id)
        if record is None:
            return
        name = layout.pack_name(pack.id.hex())
        if self.fetch is not None:
            try:
                if self.fetch(name, self.sizes.get(name)):
                    self._local.add(pack.id)
            except CairnError:
                return  # the blobs' own reads say what is wrong
        lookup = self.reader.lookup
        listed: dict[bytes, BlobRef] = {}
        for b in record.blobs:
            at = lookup(b.id)  # a blob stored twice is read where the index places it
            if at is not None and (at.pack.id, at.offset, at.length) == (pack.id, *_place(b)):
                listed[b.id] = b
        blobs = sorted(listed.values(), key=lambda b: b.offset)
        size = sum(b.length for b in blobs)
        if not blobs or self._size + size > self.budget:
            return
        local = pack.id in self._local
        for start, end, run in coalesce(blobs, _place, GAP, RANGE_BYTES):
            try:
                data = self.reader.storage.read(name, start, end - start)
            except CairnError:
                return  # the blobs' own reads say what is wrong
            if not local:
                self.requests += 1
                self.bytes_read += len(data)
            for b in run:
                at = b.offset - start
                piece = data[at : at + b.length]  # short past a truncated pack's end
                self._held[b.id] = (pack.id, b.offset, piece)
                self._size += len(piece)


def _place(b: BlobRef) -> tuple[int, int]:
    return b.offset, b.length
