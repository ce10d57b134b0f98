"""One file's object, written so that the manifest's hash always describes what the store
holds (docs/mirror.md §5): the file is read as the scan saw it (same size, times, inode) and
has not changed by the time its object is written, or it is hashed again and written again.
A file that keeps changing is given up and reported; its entry then stays out of the
manifest rather than describe bytes the object does not hold.

In an encrypted mirror (docs/mirror.md §8.4) the file is read once, hashed and encrypted in
the same pass: in memory up to ``IN_MEMORY`` bytes, else into an anonymous temporary file
(``$TMPDIR``) that is then sent, in parts when it is large. Its object has a fresh salt at
every write, but for the resume of an upload in parts: the journal records the salt with the
upload, and the same content sealed again under it gives the same parts, byte for byte. The
salt is reused only when the content hashes as the one it sealed; otherwise the file is
sealed again under a fresh salt, and what the old one sealed never leaves the temporary file."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import blake3

from cairn.crypto.segments import encrypted_size
from cairn.ops.mirror.codec import Codec
from cairn.ops.mirror.crypt import CONTENT_TYPE, MirrorCipher
from cairn.ops.mirror.scan import FileChanged, Scanned, hash_file
from cairn.storage.base import Content, SpooledContent
from cairn.storage.objects import ObjectStore, UploadJournal

IN_MEMORY = 8 << 20  # files up to this size are read once, hashed and sent from memory
_READ = 1 << 20  # bytes read at a time from a file encrypted into a temporary file
ATTEMPTS = 3  # reads of a file that changes while it goes up, before it is given up


class Journals(Protocol):
    """Where uploads in parts are recorded (the local state, cairn.ops.mirror.state)."""

    def journal(self, content: bytes, salt: bytes | None = None) -> UploadJournal: ...

    def upload_salt(self, name: str, content: bytes) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Uploaded:
    etag: str
    hash: bytes  # what the object holds; differs from the scan's when the file changed since
    salt: bytes | None = None  # the salt of an encrypted object's header


def upload(
    objects: ObjectStore,
    root: bytes,
    item: Scanned,
    *,
    codec: Codec,
    cold: bool,
    journals: Journals | None = None,
) -> Uploaded:
    """Writes ``item``'s file to its key. Raises FileChanged when it kept changing, OSError
    when it cannot be read. ``journals`` gives, for a content hash (and salt), where a
    multipart upload of that content is recorded (a resumed upload of other content must not
    reuse parts)."""
    entry = item.entry
    full = os.path.join(root, entry.path)
    key = codec.key(entry.path)
    ctype = codec.content_type(entry.path)
    expected = entry.hash
    for _attempt in range(ATTEMPTS):
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if codec.cipher is not None:
                up = _encrypted(objects, codec.cipher, fd, full, item, key, cold, journals)
                if up is not None:
                    return up
                continue
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise FileChanged(f"{os.fsdecode(full)} is no longer a regular file")
            if _seen(before) != (entry.size, entry.mtime, item.ctime, item.inode):
                # changed since it was hashed: hash it again as it is now
                entry.size, entry.mtime = before.st_size, before.st_mtime_ns
                item.ctime, item.inode = before.st_ctime_ns, before.st_ino
                expected = None
            data: Content
            if before.st_size <= IN_MEMORY:
                data = _read_all(fd, before.st_size)
                digest = blake3.blake3(data).digest()
            else:
                if expected is None:
                    expected = hash_file(full, before.st_size, before.st_mtime_ns)
                digest = expected
                data = SpooledContent(fd, before.st_size)
            if _stable(fd, before):
                parts = journals.journal(digest) if journals is not None else None
                etag = objects.put(key, data, content_type=ctype, cold=cold, journal=parts)
                if _stable(fd, before):
                    entry.hash = digest
                    return Uploaded(etag, digest)
        except FileChanged:
            pass
        finally:
            os.close(fd)
        expected = None
    raise FileChanged(f"{os.fsdecode(full)} kept changing while it was uploaded")


def _encrypted(
    objects: ObjectStore,
    cipher: MirrorCipher,
    fd: int,
    full: bytes,
    item: Scanned,
    key: str,
    cold: bool,
    journals: Journals | None,
) -> Uploaded | None:
    """The file ``fd`` encrypted and written to ``key``, hashed in the pass that encrypts
    it; None (the caller tries again) if it changed meanwhile. An object that goes up in
    parts resumes the upload the journal records for its content, sealed under its salt."""
    entry = item.entry
    before = os.fstat(fd)
    if not stat.S_ISREG(before.st_mode):
        raise FileChanged(f"{os.fsdecode(full)} is no longer a regular file")
    multipart = objects.multipart
    in_parts = multipart is not None and encrypted_size(before.st_size) >= multipart.threshold
    recorded = None
    if in_parts and journals is not None and entry.hash is not None:
        recorded = journals.upload_salt(key, entry.hash)
    # the salt the journal records, and a fresh one if the content is not the one it sealed
    salts: list[bytes | None] = [None] if recorded is None else [recorded, None]
    with contextlib.ExitStack() as stack:
        for reuse in salts:
            hasher = blake3.blake3()
            data: Content
            if before.st_size <= IN_MEMORY:
                plain = _read_all(fd, before.st_size)
                hasher.update(plain)
                data, salt = cipher.encrypt_all(plain, salt=reuse)
            else:
                spool = stack.enter_context(tempfile.TemporaryFile())
                stream = cipher.encrypt_stream(_chunks(fd, before.st_size, hasher), salt=reuse)
                for chunk in stream:
                    spool.write(chunk)
                spool.flush()
                data, salt = SpooledContent(spool.fileno(), spool.tell()), stream.salt
            if reuse is None or hasher.digest() == entry.hash:
                break
            # other content than the recorded salt sealed: that spool is never sent
        if not _stable(fd, before):
            return None
        parts = None
        if in_parts and journals is not None:
            parts = journals.journal(hasher.digest(), salt)
        etag = objects.put(key, data, content_type=CONTENT_TYPE, cold=cold, journal=parts)
        if not _stable(fd, before):
            return None
    entry.size, entry.mtime = before.st_size, before.st_mtime_ns
    item.ctime, item.inode = before.st_ctime_ns, before.st_ino
    entry.hash, entry.salt = hasher.digest(), salt
    return Uploaded(etag, entry.hash, salt)


def _chunks(fd: int, size: int, hasher: blake3.blake3) -> Iterator[bytes]:
    """The ``size`` bytes of the file ``fd``, hashed as they are read; FileChanged if it has
    another size now."""
    offset = 0
    while offset < size:
        data = os.pread(fd, min(_READ, size - offset), offset)
        if not data:
            raise FileChanged("the file's size changed while it was read")
        hasher.update(data)
        offset += len(data)
        yield data
    if os.pread(fd, 1, size):
        raise FileChanged("the file's size changed while it was read")


def _seen(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _stable(fd: int, before: os.stat_result) -> bool:
    return _seen(os.fstat(fd)) == _seen(before)


def _read_all(fd: int, size: int) -> bytes:
    data = os.pread(fd, size, 0)
    if len(data) != size or os.pread(fd, 1, size):
        raise FileChanged("the file's size changed while it was read")
    return data
