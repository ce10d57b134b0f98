"""Segmented authenticated encryption of one file, for objects that are read by byte ranges
(docs/mirror.md §8.4).

An object is a 40-byte header (an 8-byte magic whose last byte is the version, then a random
32-byte salt) followed by the file's bytes cut into segments of ``SEGMENT`` bytes, each sealed
on its own with AES-256-GCM under a key derived from the master key and the salt. Segment
``i``'s nonce is ``i``, with bit 95 set on the last segment, so a reordered, dropped or
appended segment fails authentication, and a truncation at a segment boundary is told from
damage. Every segment but the last is full, so where plaintext byte X lies in the object is
arithmetic, and any range decrypts from the segments that cover it alone.

Memory stays bounded by a segment or two whatever the file's size: encryption and whole-object
decryption are streams, with one segment of look-ahead to know which segment is the last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cairn.crypto import aead

MAGIC = b"CAIRNMF\x01"  # cairn mirror file, version 1
SALT_LEN = 32
HEADER_LEN = len(MAGIC) + SALT_LEN
SEGMENT = 64 * 1024  # plaintext bytes of every segment but the last
TAG_LEN = aead.TAG_LEN
SEALED = SEGMENT + TAG_LEN  # a full segment in the object
LAST = 1 << 95  # the nonce's flag of the last segment
_PURPOSE = b"mirror content"

ReadRange = Callable[[int, int], bytes]  # (offset, length) -> the object's bytes there


class SegmentError(Exception):
    """An object that is not one this version writes, or fails authentication: the message
    says which, in one line, without naming the object (the caller does)."""


def segment_count(plain_size: int) -> int:
    """Segments of a file of ``plain_size`` bytes: an empty file still has one (empty) segment,
    so that an object cut after its header is told from an empty file."""
    return max(1, -(-plain_size // SEGMENT))


def encrypted_size(plain_size: int) -> int:
    if plain_size < 0:
        raise ValueError(f"a negative size: {plain_size}")
    return HEADER_LEN + plain_size + TAG_LEN * segment_count(plain_size)


def plain_size(stored_size: int) -> int:
    """The size of the file an object of ``stored_size`` bytes holds; SegmentError if no file
    makes an object of that size."""
    full, rest = divmod(stored_size - HEADER_LEN, SEALED)
    plain = full * SEGMENT + rest - TAG_LEN if rest else full * SEGMENT
    if stored_size < HEADER_LEN + TAG_LEN or encrypted_size(max(plain, 0)) != stored_size:
        raise SegmentError(f"{stored_size} bytes is not the size of an encrypted file")
    return plain


def new_salt() -> bytes:
    return aead.new_salt()


def header(salt: bytes) -> bytes:
    if len(salt) != SALT_LEN:
        raise ValueError(f"a salt of {len(salt)} bytes, not {SALT_LEN}")
    return MAGIC + salt


def salt_of(head: bytes) -> bytes:
    """The salt of an object's header (its first ``HEADER_LEN`` bytes), checked."""
    if len(head) < HEADER_LEN:
        raise SegmentError(f"shorter than the {HEADER_LEN}-byte header (truncated)")
    if head[: len(MAGIC) - 1] != MAGIC[:-1]:
        raise SegmentError("not an encrypted mirror file (no CAIRNMF magic)")
    if head[len(MAGIC) - 1] != MAGIC[-1]:
        raise SegmentError(f"unknown encrypted file version {head[len(MAGIC) - 1]}")
    return bytes(head[len(MAGIC) : HEADER_LEN])


class FileCipher:
    """The key of one object: seals and opens its segments."""

    def __init__(self, master: bytes, salt: bytes) -> None:
        self.salt = salt
        self.header = header(salt)
        self._aes: AESGCM = aead.derive(master, salt, _PURPOSE)

    def seal(self, index: int, plain: bytes | memoryview, last: bool) -> bytes:
        return aead.seal(self._aes, _nonce(index, last), plain, self.header)

    def open(self, index: int, sealed: bytes | memoryview, last: bool) -> bytes:
        """The plaintext of segment ``index``; SegmentError, saying what is wrong, if it fails
        authentication: a segment that opens with the other flag tells a truncation at a
        segment boundary (or an extension) from damage."""
        plain = self._unseal(index, sealed, last)
        if plain is not None:
            return plain
        if self._unseal(index, sealed, not last) is not None:
            if last:
                raise SegmentError(f"ends after segment {index}, which is not its last (truncated)")
            raise SegmentError(f"has bytes after its last segment {index} (extended)")
        raise SegmentError(f"segment {index} fails authentication (damaged or tampered)")

    def _unseal(self, index: int, sealed: bytes | memoryview, last: bool) -> bytes | None:
        try:
            return aead.unseal(self._aes, _nonce(index, last), sealed, self.header)
        except aead.AuthenticationFailed:
            return None


def _nonce(index: int, last: bool) -> int:
    if not 0 <= index < LAST:
        raise ValueError(f"segment index {index} out of range")
    return index | LAST if last else index


def encrypt(cipher: FileCipher, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The object of the file whose bytes are ``chunks`` (of any sizes): its header, then one
    sealed segment at a time."""
    yield cipher.header
    index = 0
    pending: bytes | None = None
    for block in _blocks(chunks, SEGMENT):
        if pending is not None:
            yield cipher.seal(index, pending, last=False)
            index += 1
        pending = block
    yield cipher.seal(index, pending or b"", last=True)


def decrypt(master: bytes, chunks: Iterable[bytes], salt: bytes | None = None) -> Iterator[bytes]:
    """The file's bytes, one segment at a time, from the object's bytes ``chunks``; the header's
    salt must be ``salt`` when given. Raises SegmentError at the first segment that fails, and
    at the end if the object is truncated or extended."""
    source = _Exact(chunks)
    found = salt_of(source.take(HEADER_LEN))
    if salt is not None and found != salt:
        raise SegmentError("its header is not the one the manifest records (another version)")
    cipher = FileCipher(master, found)
    index = 0
    current = source.take(SEALED)
    while following := source.take(SEALED):
        yield cipher.open(index, current, last=False)
        index += 1
        current = following
    if len(current) < TAG_LEN:
        raise SegmentError(f"ends within segment {index} (truncated)")
    yield cipher.open(index, current, last=True)


def decrypt_range(
    master: bytes,
    read: ReadRange,
    offset: int,
    length: int,
    size: int,
    salt: bytes | None = None,
) -> bytes:
    """Bytes ``offset`` to ``offset + length`` (fewer past the end) of a file of ``size`` bytes,
    from the segments that cover them alone: one call of ``read``, and one more for the header
    when ``salt`` is not given and the range does not start in the first segment."""
    if offset < 0 or length < 0 or size < 0:
        raise ValueError(f"a negative offset, length or size: {offset}, {length}, {size}")
    end = min(offset + length, size)
    if offset >= end:
        return b""
    first, last = offset // SEGMENT, (end - 1) // SEGMENT
    final = segment_count(size) - 1
    start = HEADER_LEN + first * SEALED
    stop = HEADER_LEN + last * SEALED + min(SEGMENT, size - last * SEGMENT) + TAG_LEN
    if salt is not None:
        body = read(start, stop - start)
    elif first == 0:
        data = read(0, stop)
        salt, body = salt_of(data[:HEADER_LEN]), data[HEADER_LEN:]
    else:
        salt, body = salt_of(read(0, HEADER_LEN)), read(start, stop - start)
    if len(body) != stop - start:
        raise SegmentError(
            f"has {len(body)} bytes where segments {first} to {last} take {stop - start}"
            " (truncated, or not the size the manifest records)"
        )
    cipher = FileCipher(master, salt)
    view = memoryview(body)
    plain = b"".join(
        cipher.open(i, view[(i - first) * SEALED : (i - first + 1) * SEALED], last=i == final)
        for i in range(first, last + 1)
    )
    return plain[offset - first * SEGMENT : end - first * SEGMENT]


def _blocks(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """``chunks`` cut again into blocks of ``size`` bytes, the last one shorter; never an empty
    block. Each block is a copy: a caller may reuse its buffer for the next chunk."""
    buf = bytearray()
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        if buf:
            need = size - len(buf)
            buf += view[:need]
            view = view[need:]
            if len(buf) < size:
                continue
            yield bytes(buf)
            buf.clear()
        while len(view) >= size:
            yield bytes(view[:size])
            view = view[size:]
        buf += view
    if buf:
        yield bytes(buf)


class _Exact:
    """Takes exactly the bytes asked for from an iterator of chunks (fewer only at its end)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._blocks = iter(chunks)
        self._buf = bytearray()

    def take(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = next(self._blocks, None)
            if chunk is None:
                break
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out
