"""Reading blobs out of packs: ranged reads, authenticated decryption, per-thread buffers.

A ``BlobReader`` reads a range of a pack into a buffer the calling thread reuses, and opens a
blob (authenticates and decrypts it, then checks its length and id) into another: a restore
moves a gigabyte through these, and a fresh megabyte-sized buffer per blob would cost a page
fault and zeroing per page. A view it returns is valid until the same thread's next call that
uses the same buffer (said per method); ``load`` and ``open`` return bytes of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from cairn.core.errors import IntegrityError, NotFoundError
from cairn.core.memory import ThreadBuffer
from cairn.crypto import aead
from cairn.crypto.keys import MasterKey
from cairn.repo import layout
from cairn.repo.compress import PayloadError, unpack_view
from cairn.repo.index import IndexEntry, PackInfo
from cairn.repo.limits import max_blob
from cairn.repo.pack import BlobRef, open_blob_into
from cairn.storage.base import Storage

# decrypted blobs: the largest chunk, its mode byte, and room to spare
OPENED_BYTES = (4 << 20) + (64 << 10)
# ranges of a few blobs read at once (restore reads up to 8 MiB)
READ_BYTES = 9 << 20

Lookup = Callable[[bytes], IndexEntry | None]


class BlobReader:
    """Blobs of the packs in ``storage``, found with ``lookup`` (the repository's index)."""

    def __init__(self, storage: Storage, key: MasterKey, lookup: Lookup) -> None:
        self.storage = storage
        self.key = key
        self.lookup = lookup
        self._opened = ThreadBuffer(OPENED_BYTES)
        self._read = ThreadBuffer(READ_BYTES)

    def entry(self, blob_id: bytes, blob_type: int | None = None) -> IndexEntry:
        """Where a blob is stored; NotFoundError if the index lacks it, IntegrityError if it is
        not of ``blob_type``."""
        entry = self.lookup(blob_id)
        if entry is None:
            raise NotFoundError(f"blob {blob_id.hex()} is not in the index")
        if blob_type is not None and entry.pack.blob_type != blob_type:
            raise IntegrityError(
                f"blob {blob_id.hex()}",
                f"is a {layout.BLOB_TYPES[entry.pack.blob_type]} blob, "
                f"expected {layout.BLOB_TYPES[blob_type]}",
            )
        return entry

    def load(self, blob_id: bytes, blob_type: int | None = None) -> bytes:
        """A blob, as bytes of its own (its encrypted bytes not read into the read buffer)."""
        data = self.load_view(blob_id, blob_type, buffered=False)
        return data if isinstance(data, bytes) else bytes(data)

    def load_kept(self, blob_id: bytes, blob_type: int | None = None) -> memoryview | bytes:
        """A blob to be kept (a cache's), in memory of its own: decrypted into a buffer of its
        size, not this thread's, and not copied from there (a stored blob is a view of that
        buffer, a compressed one the bytes zstd made). The threads that fill a cache then keep
        no buffer of the largest blob each has read, and a stored blob is not copied once
        more."""
        entry = self.entry(blob_id, blob_type)
        ref = BlobRef(blob_id, entry.offset, entry.length, entry.raw_length)
        own = memoryview(bytearray(max(entry.length - aead.TAG_LEN, 0)))
        return self.open_view(entry.pack, ref, into=own)

    def load_view(
        self, blob_id: bytes, blob_type: int | None = None, buffered: bool = True
    ) -> memoryview | bytes:
        """A blob, decrypted into this thread's buffer: valid until the thread's next
        ``load_view`` or ``open_view`` (``buffered``: read into this thread's read buffer too,
        then valid until its next ``read_range`` as well)."""
        entry = self.entry(blob_id, blob_type)
        ref = BlobRef(blob_id, entry.offset, entry.length, entry.raw_length)
        sealed = self.read_range(entry.pack, entry.offset, entry.length) if buffered else None
        return self.open_view(entry.pack, ref, sealed)

    def read_range(self, pack: PackInfo, offset: int, length: int) -> memoryview:
        """Bytes of a pack, read into this thread's read buffer when they fit: valid until the
        thread's next ``read_range``. May be short where the pack ends."""
        buf = self._read.get(length)
        return buf[: self.storage.read_into(layout.pack_name(pack.id.hex()), offset, buf)]

    def open(self, pack: PackInfo, ref: BlobRef, sealed: bytes | memoryview | None = None) -> bytes:
        """A blob at a known place, authenticated and checked against its id, as bytes of its
        own; ``sealed`` is its encrypted bytes when the caller has already read them."""
        data = self.open_view(pack, ref, sealed)
        return data if isinstance(data, bytes) else bytes(data)

    def open_view(
        self,
        pack: PackInfo,
        ref: BlobRef,
        sealed: bytes | memoryview | None = None,
        into: memoryview | None = None,
    ) -> memoryview | bytes:
        """``open``, decrypted into this thread's buffer: valid until the thread's next
        ``open_view`` or ``load_view``. ``sealed`` may be a view of this thread's read buffer.
        ``into``: the buffer to decrypt into instead (``ref.length - TAG_LEN`` bytes)."""
        name = layout.pack_name(pack.id.hex())
        if sealed is None:
            sealed = self.storage.read(name, ref.offset, ref.length)
        where = f"{name} (blob {ref.id.hex()[:16]})"
        if len(sealed) != ref.length or ref.length < aead.TAG_LEN:
            raise IntegrityError(where, "pack is truncated")
        try:
            out = self._opened.get(ref.length - aead.TAG_LEN) if into is None else into
            open_blob_into(
                self.key.encryption, pack.salt, pack.blob_type, ref.id, ref.offset, sealed, out
            )
            data = unpack_view(out, ref.raw_length, max_blob(pack.blob_type))
        except aead.AuthenticationFailed:
            raise IntegrityError(where, "failed authentication (damaged or tampered)") from None
        except PayloadError as e:
            raise IntegrityError(where, str(e)) from None
        if len(data) != ref.raw_length or self.key.blob_id(data) != ref.id:
            raise IntegrityError(where, "content does not match its id")
        return data
