"""One file of a pull: kept when the local file already is the manifest's, else downloaded
from its object into a temporary file beside it, checked against the entry's BLAKE3, given its
metadata and only then renamed into place. A file whose object is missing, short or altered
raises, leaving the local file as it was and nothing half-written."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import blake3

from cairn.core.errors import IntegrityError, ObjectMissing
from cairn.model.node import Node
from cairn.ops.fsapply import apply_to_fd
from cairn.ops.mirror.codec import PLAIN, Codec
from cairn.ops.mirror.localfs import as_node, hash_local, replace, sync_meta_fd, temp_name
from cairn.ops.mirror.manifest import Entry
from cairn.ops.restore.zeros import write_data
from cairn.ops.safefs import Target
from cairn.storage.base import Storage

READ = 4 << 20  # bytes asked of the store at a time (one ranged GET over HTTP)


@dataclass(frozen=True, slots=True)
class Fetched:
    downloaded: int  # bytes downloaded; 0 for a file kept
    kept: bool
    problems: list[str] = field(default_factory=list)  # metadata that could not be applied


class Fetcher:
    def __init__(
        self,
        store: Storage,
        target: Target,
        *,
        checksum: bool,
        on_bytes: Callable[[int], None] | None = None,
        codec: Codec = PLAIN,
    ) -> None:
        self.store = store
        self.codec = codec
        self.target = target
        self.checksum = checksum
        self.on_bytes = on_bytes

    def sync(self, entry: Entry, key: str, shared: bool) -> Fetched:
        """``entry``'s file at its place below the target; ``shared``: one name of a hard-link
        group (the local file may then have other names)."""
        parts = tuple(entry.path.split(b"/"))
        pfd = self.target.dir_fd(parts[:-1])
        node = as_node(entry)
        problems = self._keep(pfd, parts[-1], entry, node, shared)
        if problems is not None:
            return Fetched(0, True, problems)
        return self._download(pfd, parts[-1], entry, node, key)

    def _keep(
        self, pfd: int, name: bytes, entry: Entry, node: Node, shared: bool
    ) -> list[str] | None:
        """If the local file is the entry's content (size and mtime, or its hash with
        ``checksum``), gives it the entry's metadata where it lacks some and returns the
        problems found; else None."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
            return None
        if st.st_nlink > 1 and not shared:
            return None  # one inode with another name: the entry is a file of its own
        if not self.checksum and st.st_mtime_ns != entry.mtime:
            return None
        try:
            fd = self.target.open_file(pfd, name)
        except PermissionError:
            # one of this user's files it may not read (mode 000): kept if nothing but its
            # content could differ, else replaced
            if self.checksum or node.xattrs or stat.S_IMODE(st.st_mode) != node.mode:
                return None
            return []
        try:
            if self.checksum and hash_local(fd) != entry.hash:
                return None
            return sync_meta_fd(fd, node)
        finally:
            os.close(fd)

    def _download(self, pfd: int, name: bytes, entry: Entry, node: Node, key: str) -> Fetched:
        tmp = temp_name()
        fd = self.target.create_file(pfd, tmp, 0o600)
        try:
            self._copy(fd, entry, key)
            problems = apply_to_fd(fd, node)
            os.close(fd)
            fd = -1
            replace(pfd, tmp, name)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=pfd)
            raise
        return Fetched(entry.size, False, problems)

    def _copy(self, fd: int, entry: Entry, key: str) -> None:
        """The file's bytes (its object's, decrypted in an encrypted mirror) into the new file
        ``fd``, zeros left as holes; raises unless they are the entry's."""
        hasher = blake3.blake3()
        offset = end = 0
        size = entry.size
        name = f"object {key}"
        for data in self.codec.plain(self._object(key, self.codec.stored_size(size)), entry, name):
            if offset + len(data) > size:
                raise IntegrityError(name, f"holds more than the {size} bytes of its file")
            hasher.update(data)
            written, last = write_data(fd, data, offset)
            if written:
                end = last
            offset += len(data)
            if self.on_bytes is not None:
                self.on_bytes(len(data))
        if offset != size:
            raise IntegrityError(name, f"holds {offset} of the {size} bytes of its file")
        if hasher.digest() != entry.hash:
            raise IntegrityError(
                f"object {key}",
                "does not match the manifest's hash; the local file is left as it was",
            )
        if end < size:
            os.ftruncate(fd, size)  # the file ends in a hole

    def _object(self, key: str, size: int) -> Iterator[bytes]:
        """The ``size`` bytes of the object ``key``, read in order."""
        offset = 0
        while offset < size:
            n = min(READ, size - offset)
            try:
                data = self.store.read(key, offset, n)
            except ObjectMissing:
                raise IntegrityError(f"object {key}", "missing from the mirror") from None
            if len(data) != n:
                raise IntegrityError(
                    f"object {key}", f"ends at {offset + len(data)} of {size} bytes"
                )
            offset += n
            yield data
