"""A repository opened with its master key: objects, blobs, index and snapshots.

Write order (the invariant that keeps every snapshot restorable, even after a crash):
a pack is stored before any index object lists it, and every blob a snapshot references is in
a stored index object before the snapshot object is written.
"""

from __future__ import annotations

import getpass
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal, overload

import blake3

from cairn.core import clock
from cairn.core.errors import (
    IntegrityError,
    NotFoundError,
    ObjectMissing,
    RepositoryError,
)
from cairn.core.overlap import Overlap
from cairn.crypto import aead
from cairn.crypto.kdf import KdfParams
from cairn.crypto.keys import BadPassword, MasterKey, wrap
from cairn.repo import layout
from cairn.repo.blobreader import BlobReader
from cairn.repo.compress import (
    PayloadError,
    pack_payload,
    unpack_payload,
)
from cairn.repo.config import DEFAULT_PACK_SIZE, RepoConfig
from cairn.repo.index import (
    INDEX_OBJECT_BLOBS,
    BlobIndex,
    PackColumns,
    PackInfo,
    PackRecord,
    blob_count,
    decode_index_columns,
    encode_index,
)
from cairn.repo.journal import PackJournal
from cairn.repo.keyring import open_known, read_key_files, unlock
from cairn.repo.limits import max_object
from cairn.repo.objectcache import ObjectCache
from cairn.repo.pack import MAGIC as PACK_MAGIC
from cairn.repo.pack import (
    PREFIX_LEN,
    TAIL_LEN,
    BlobRef,
    PackFormatError,
    header_length,
    parse_header,
)
from cairn.repo.packer import Spool
from cairn.repo.packlist import log_warning
from cairn.repo.writer import Writer
from cairn.storage.base import Storage

_KIND = {
    layout.CONFIG: b"config",
    layout.INDEX: b"index",
    layout.SNAPSHOTS: b"snapshot",
    layout.LOCKS: b"lock",
    layout.OPERATIONS: b"operation",
}


class Repository:
    def __init__(self, storage: Storage, key: MasterKey, config: RepoConfig) -> None:
        self.storage = storage
        self.key = key
        self.config = config
        self.key_id: str | None = None  # the key file that opened the repository
        self.index = BlobIndex()
        # reads blobs (restore, check, every tree read) with buffers of its own
        self.reader = BlobReader(storage, key, lambda blob_id: self.index.get(blob_id))
        # packs a running prune condemned (docs/format.md §12): absent from the index, and
        # never adopted from the pack journal
        self.excluded_packs: frozenset[bytes] = frozenset()
        # called before every index object and snapshot this process writes: raises when the
        # repository lock could not be kept fresh (a prune may no longer see this writer)
        self.write_guard: Callable[[], None] | None = None
        # where things skipped on the way (a damaged snapshot object) are reported: (object
        # name, message); by default the ``cairn`` logger
        self.on_notice: Callable[[str, str], None] | None = None
        # threads on which the requests of a step that do not depend on one another are sent
        # at once (cairn.core.overlap): several on an object store, none for a local directory
        self.request_threads = 0
        # local copies of the index objects, snapshots and tree packs (attach_cache), or None
        self.object_cache: ObjectCache | None = None
        # index objects are downloaded on request_threads but decoded one at a time: decoding
        # holds the GIL anyway, and each one decoding holds a Python object per blob of its
        # object (about 15 MB for 50,000 blobs)
        self._decoding = threading.Lock()

    # ----------------------------------------------------------------- local copies
    def attach_cache(self, directory: Path) -> ObjectCache:
        """From now on the immutable objects this repository reads and writes are kept under
        ``directory`` too, and read from there (cairn.repo.objectcache)."""
        if self.object_cache is None:
            self.object_cache = ObjectCache(self.storage, directory, self.notice)
            self.storage = self.reader.storage = self.object_cache
        return self.object_cache

    def fetch_pack(self, name: str, size: int | None = None) -> bool:
        """Copies the pack ``name`` (a tree pack, ``size`` bytes if known) to this host whole,
        if the repository keeps copies (``attach_cache``): True if its reads are now local."""
        return self.object_cache is not None and self.object_cache.fetch(name, size)

    def detach_cache(self) -> None:
        """Reads go to the store itself again (a check verifies what the store holds)."""
        if self.object_cache is not None:
            self.storage = self.reader.storage = self.object_cache.inner
            self.object_cache = None

    # ----------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        storage: Storage,
        password: bytes,
        *,
        pack_size: int = DEFAULT_PACK_SIZE,
        compression_level: int = 3,
        kdf: KdfParams | None = None,
        like: Repository | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> Repository:
        """A new repository; ``like``: one whose chunker parameters and id key it shares, so
        that the same data is cut into the same blobs with the same ids in both (a copy
        between them moves only what the other lacks; docs/format.md §5.4); ``extra``: the
        config's further fields (an object lock, cairn.repo.lockrule)."""
        try:
            storage.stat(layout.CONFIG)
        except ObjectMissing:
            pass
        else:
            raise RepositoryError(f"{storage.describe()} already holds a repository")
        if any(True for _ in storage.list(layout.KEYS)):
            raise RepositoryError(f"{storage.describe()} already holds repository keys")
        key = MasterKey.generate()
        config = RepoConfig.new(pack_size=pack_size, compression_level=compression_level)
        if like is not None:
            key = MasterKey(key.encryption, like.key.id_key)
            config = replace(config, chunker=like.config.chunker)
        if extra:
            config = replace(config, extra=dict(extra))
        if not 64 << 10 <= pack_size <= 1 << 30:
            raise RepositoryError("the pack size must be between 64 KiB and 1 GiB")
        repo = cls(storage, key, config)
        key_id = repo.add_key(password, kdf or KdfParams())
        repo.key_id = key_id
        storage.write(layout.CONFIG, repo.seal(layout.CONFIG, config.encode()))
        # The store never overwrites an object: if another init raced us, its config won.
        try:
            stored = RepoConfig.decode(repo.unseal(layout.CONFIG, storage.read(layout.CONFIG)))
        except IntegrityError:
            stored = None
        if stored != config:
            storage.delete(layout.key_name(key_id))  # our key opens nothing: withdraw it
            raise RepositoryError(
                "another repository was created at the same place at the same time"
            )
        return repo

    @classmethod
    def open(
        cls,
        storage: Storage,
        password: bytes,
        key_hint: str | None = None,
        threads: int = 0,
        known_key: str | None = None,
    ) -> Repository:
        """Opens with the first key file that ``password`` opens, trying them cheapest KDF
        first; ``key_hint`` (a key id or a unique prefix) is tried before all others.

        With ``threads`` (an object store: each request waits a round trip) the config is read
        while the keys are listed, the key files are read at once, and the repository's later
        steps send their independent requests on as many threads (``request_threads``).

        ``known_key`` (``keys/<id>``: the key file this host opened the repository with
        before), when no hint is given, is read with the config and tried alone; the keys are
        listed only if it is gone, damaged or does not open (keyring.open_known), and then
        tried as ever, but for a known key file the password did not open."""
        with Overlap(threads) as overlap:
            config = overlap.start(storage.read, layout.CONFIG)
            opened, refused = None, []
            if known_key is not None and not key_hint:
                try:
                    opened = open_known(storage, known_key, password, overlap)
                except BadPassword:
                    refused.append(known_key)  # derived once is enough
            if opened is None:
                names = [n for n, _ in storage.list(layout.KEYS)]
                if not names:
                    try:
                        config.result()
                    except ObjectMissing:
                        raise RepositoryError(
                            f"{storage.describe()} is not a cairn repository (no config, no keys)"
                        ) from None
                    raise RepositoryError(f"{storage.describe()}: the repository has no keys")
                others = [n for n in names if n not in refused]
                found = read_key_files(storage, others, key_hint, overlap)
                opened = unlock(found, password, refused=len(refused))
            key_name, key = opened
            try:
                raw = config.result()
            except ObjectMissing:
                raise RepositoryError(
                    f"{storage.describe()}: the config object is missing"
                ) from None
        repo = cls(storage, key, RepoConfig.new())
        repo.key_id = layout.id_of(key_name)
        repo.request_threads = threads
        try:
            repo.config = RepoConfig.decode(repo.unseal(layout.CONFIG, raw))
        except ValueError as e:
            raise RepositoryError(f"config: {e}") from None
        return repo

    def notice(self, obj: str, message: str) -> None:
        """Reports something skipped that the user should know about (the command goes on)."""
        if self.on_notice is not None:
            self.on_notice(obj, message)
        else:
            log_warning(obj, message)

    def add_key(
        self,
        password: bytes,
        kdf: KdfParams | None = None,
        host: str | None = None,
        username: str | None = None,
    ) -> str:
        data = self.key_file(password, kdf, host, username)
        key_id = blake3.blake3(data).hexdigest()
        self.storage.write(layout.key_name(key_id), data)
        return key_id

    def key_file(
        self,
        password: bytes,
        kdf: KdfParams | None = None,
        host: str | None = None,
        username: str | None = None,
    ) -> bytes:
        """A key file (docs/format.md §5.1) wrapping this repository's master keys under
        ``password``; ``host`` and ``username`` default to this machine's and user's."""
        meta = {
            "created": clock.now().isoformat(),
            "host": socket.gethostname() if host is None else host,
            "username": getpass.getuser() if username is None else username,
        }
        return wrap(self.key, password, kdf or KdfParams(), meta)

    # ----------------------------------------------------------------- sealed objects
    def seal(self, prefix: str, plaintext: bytes) -> bytes:
        return aead.seal_object(self.key.encryption, pack_payload(plaintext), _KIND[prefix])

    def unseal(self, name: str, data: bytes) -> bytes:
        prefix = layout.CONFIG if name == layout.CONFIG else name.split("/", 1)[0] + "/"
        try:
            payload = aead.unseal_object(self.key.encryption, data, _KIND[prefix])
            return unpack_payload(payload, max_object(prefix))
        except aead.AuthenticationFailed:
            raise IntegrityError(name, "failed authentication (damaged or tampered)") from None
        except (PayloadError, aead.EnvelopeError) as e:
            raise IntegrityError(name, str(e)) from None

    def save_object(self, prefix: str, plaintext: bytes) -> str:
        """Stores a content-addressed object under ``prefix``; returns its hex id."""
        data = self.seal(prefix, plaintext)
        hex_id = blake3.blake3(data).hexdigest()
        self.storage.write(prefix + hex_id, data)
        return hex_id

    def load_object(self, name: str) -> bytes:
        data = self.storage.read(name)
        if name != layout.CONFIG and blake3.blake3(data).hexdigest() != layout.id_of(name):
            raise IntegrityError(name, "content does not match its name (damaged or truncated)")
        return self.unseal(name, data)

    # ----------------------------------------------------------------- index
    def load_index(
        self,
        exclude_packs: frozenset[bytes] | set[bytes] | Callable[[], set[bytes]] = frozenset(),
        tree_records: dict[bytes, PackRecord] | None = None,
    ) -> None:
        """(Re)loads the whole index; blobs only in ``exclude_packs`` are treated as absent.
        ``exclude_packs`` may be a call that gives them (a step under way beside this one: the
        locks being read): it is made once the first index object is in, or at the end.
        ``tree_records`` is filled with the record of every tree pack loaded (pack id -> record),
        for a walk that reads trees a pack at a time (cairn.repo.packcache).

        A prune replaces index objects (the new ones written before the old ones go): when one
        listed here is gone by the time it is read, the listing is taken again."""
        excluded: frozenset[bytes] | None = None

        def exclusion() -> frozenset[bytes]:
            nonlocal excluded
            if excluded is None:
                excluded = frozenset(exclude_packs() if callable(exclude_packs) else exclude_packs)
            return excluded

        for attempt in range(3):
            index = BlobIndex()
            trees: dict[bytes, PackRecord] = {}
            try:
                for _name, packs in self.read_index_objects(columns=True):
                    skip = exclusion()
                    kept = [c for c in packs if c.info.id not in skip]
                    index.add_columns(kept)
                    if tree_records is not None:
                        for c in kept:
                            if c.info.blob_type == layout.TREE_BLOB and c.info.id not in trees:
                                trees[c.info.id] = c.record()
            except ObjectMissing:
                if attempt == 2:
                    raise
                continue
            self.index = index
            self.excluded_packs = exclusion()
            if tree_records is not None:
                tree_records.clear()
                tree_records.update(trees)
            return

    @overload
    def read_index_objects(
        self,
        sizes: dict[str, int] | None = None,
        listing: dict[str, int] | None = None,
        columns: Literal[False] = False,
    ) -> Iterator[tuple[str, list[PackRecord]]]: ...

    @overload
    def read_index_objects(
        self,
        sizes: dict[str, int] | None = None,
        listing: dict[str, int] | None = None,
        *,
        columns: Literal[True],
    ) -> Iterator[tuple[str, list[PackColumns]]]: ...

    def read_index_objects(
        self,
        sizes: dict[str, int] | None = None,
        listing: dict[str, int] | None = None,
        columns: bool = False,
    ) -> Iterator[tuple[str, list[PackRecord]]] | Iterator[tuple[str, list[PackColumns]]]:
        """Every index object: (name, its pack records), read on the store's ``request_threads``
        (one at a time on a local directory). At most twice as many objects as threads are read
        ahead of the consumer, so memory does not grow with the number of index objects.
        ``sizes``, if given, gets each object's size from the listing (what reading it
        downloads: a prune's estimate counts it). ``listing``: index/ as a listing already made
        saw it (name -> size), instead of listing. ``columns``: each pack as columns
        (``PackColumns``), not a record with an object per blob."""
        listed = list(self.storage.list(layout.INDEX) if listing is None else listing.items())
        if sizes is not None:
            sizes.update(listed)
        names = [n for n, _ in listed]
        trees: set[str] = set()
        with Overlap(self.request_threads, "cairn-index") as overlap:
            read = self.read_index_columns if columns else self.read_index_object
            for name, future in overlap.map(read, names):
                records = future.result()
                trees.update(
                    layout.pack_name(r.info.id.hex())
                    for r in records
                    if r.info.blob_type == layout.TREE_BLOB
                )
                yield name, records
        if self.object_cache is not None:  # every index object was read
            self.object_cache.retain_packs(trees)

    def write_index(
        self, records: Sequence[PackRecord | PackColumns], per_object: int = INDEX_OBJECT_BLOBS
    ) -> list[str]:
        """Stores ``records`` (packs as records or as columns) in index objects of at most
        ``per_object`` blobs each."""
        names: list[str] = []
        batch: list[PackRecord | PackColumns] = []
        count = 0
        for r in records:
            batch.append(r)
            count += blob_count(r)
            if count >= per_object:
                names.append(layout.INDEX + self.save_object(layout.INDEX, encode_index(batch)))
                batch, count = [], 0
        if batch:
            names.append(layout.INDEX + self.save_object(layout.INDEX, encode_index(batch)))
        return names

    def read_index_object(self, name: str) -> list[PackRecord]:
        return [c.record() for c in self.read_index_columns(name)]

    def read_index_columns(self, name: str) -> list[PackColumns]:
        plaintext = self.load_object(name)
        try:
            with self._decoding:
                return decode_index_columns(plaintext)
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(name, f"malformed index: {e}") from None

    # ----------------------------------------------------------------- blobs
    def blob_id(self, data: bytes | memoryview) -> bytes:
        return self.key.blob_id(data)

    def has_blob(self, blob_id: bytes) -> bool:
        return blob_id in self.index

    def writer(
        self,
        *,
        uploads: int = 2,
        dry_run: bool = False,
        journal: PackJournal | None = None,
        remember_packs: bool = False,
        spool: Spool | None = None,
        first_pack_size: int | None = None,
    ) -> Writer:
        """A scoped writer of new blobs (``with repo.writer(...) as w:``; repo/writer.py)."""
        return Writer(
            self,
            uploads=uploads,
            dry_run=dry_run,
            journal=journal,
            remember_packs=remember_packs,
            spool=spool,
            first_pack_size=first_pack_size,
        )

    def check_writable(self) -> None:
        """Raises when this process may no longer write index objects or snapshots: its
        repository lock could not be kept fresh (``write_guard``)."""
        if self.write_guard is not None:
            self.write_guard()

    def read_pack_header(
        self, name: str, size: int, salt: bytes | None = None
    ) -> tuple[bytes, int, list[BlobRef]]:
        """(salt, blob type, blobs) of a stored pack, reading only its ends.

        Without ``salt`` (from an index) the pack's first bytes are read for it."""
        try:
            if salt is None:
                head = self.storage.read(name, 0, PREFIX_LEN)
                if len(head) < PREFIX_LEN or head[: len(PACK_MAGIC)] != PACK_MAGIC:
                    raise PackFormatError("not a pack (bad magic)")
                salt = head[len(PACK_MAGIC) :]
            want = min(size, 64 << 10)
            tail = self.storage.read(name, size - want, want)
            needed = TAIL_LEN + header_length(tail[-TAIL_LEN:])
            if needed > len(tail) and needed <= size:
                tail = self.storage.read(name, size - needed, needed)
            blob_type, blobs = parse_header(self.key.encryption, salt, tail, size)
        except PackFormatError as e:
            raise IntegrityError(name, str(e)) from None
        return salt, blob_type, blobs

    def load_blob(self, blob_id: bytes, blob_type: int | None = None) -> bytes:
        return self.reader.load(blob_id, blob_type)

    def load_blob_kept(self, blob_id: bytes, blob_type: int | None = None) -> memoryview | bytes:
        """A blob to be kept (a cache's), in memory of its own (``BlobReader.load_kept``)."""
        return self.reader.load_kept(blob_id, blob_type)

    def load_blob_at(
        self, pack: PackInfo, ref: BlobRef, sealed: bytes | memoryview | None = None
    ) -> bytes:
        """A blob at a known place, authenticated and checked against its id; ``sealed`` is
        its encrypted bytes when the caller has already read them."""
        return self.reader.open(pack, ref, sealed)

    # ----------------------------------------------------------------- snapshots
    def snapshot_ids(self) -> list[str]:
        return list(self.snapshot_sizes())

    def snapshot_sizes(self) -> dict[str, int]:
        """Every snapshot's id and the size of its object (one listing)."""
        return {layout.id_of(n): size for n, size in self.storage.list(layout.SNAPSHOTS)}

    def load_snapshot(self, hex_id: str) -> bytes:
        try:
            return self.load_object(layout.snapshot_name(hex_id))
        except ObjectMissing:
            raise NotFoundError(f"snapshot {hex_id} not found") from None

    def save_snapshot(self, plaintext: bytes) -> str:
        self.check_writable()
        return self.save_object(layout.SNAPSHOTS, plaintext)
