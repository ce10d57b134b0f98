"""The object capability of a local directory (cairn.storage.objects).

- ``put_object`` writes a temporary file and renames it over the object; ``create`` hard-links
  it into place only if the name is free; ``copy`` copies the source's file (in the kernel
  where it can) to a temporary file renamed over the destination. A reader sees the old object
  or the whole new one.
- A directory keeps no content type and no storage class: both are ignored.
- There is no server to make an ETag. The ETag of an object is ``<inode>-<mtime in ns>-<size>``
  of its file, which ``head`` reads back identically: every rewrite is a new file (a new inode
  while the old one is still in place), so the ETag changes. It does not say what the content
  is: two objects with the same bytes have different ETags.
- Objects are made as the umask allows (``OBJECT_MODE``), not private as a repository's.
- Content is never uploaded in parts (``multipart`` is None): a file is written whole.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from cairn.core.errors import ObjectMissing, StorageError
from cairn.storage.base import Content
from cairn.storage.localfiles import copy_temp, create_once, replace, write_error, write_temp
from cairn.storage.objectops import ObjectOps
from cairn.storage.objects import DEFAULT_TYPE, ObjectHead, Part, PendingUpload

if TYPE_CHECKING:  # the store constructs its capability, and hands itself in
    from cairn.storage.local import LocalStorage

# A mirror's objects are the user's files, which a web server in front of the directory may
# serve: made with the umask's permissions, where a repository's objects are private (0600).
OBJECT_MODE = 0o666


def local_etag(st: os.stat_result) -> str:
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


class LocalObjects(ObjectOps):
    """``replaced(name)`` is told of every object replaced (the store drops the descriptor it
    may keep open for reads of it)."""

    def __init__(self, store: LocalStorage, replaced: Callable[[str], None]) -> None:
        self.store = store
        self.replaced = replaced

    def put_object(self, name: str, data: Content, *, content_type: str, cold: bool = False) -> str:
        return self._replace(name, lambda dfd: write_temp(dfd, data, OBJECT_MODE))

    def _replace(self, name: str, make: Callable[[int], tuple[str, os.stat_result]]) -> str:
        """Puts the temporary file ``make(dir_fd)`` writes in place as ``name``, over what is
        there; its ETag."""
        parts = self.store._parts(name)
        try:
            dfd = self.store._open_dir(parts[:-1], create=True)
            try:
                tmp, st = make(dfd)
                replace(dfd, tmp, parts[-1])
                self.replaced(name)
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise write_error(name, e) from None
        return local_etag(st)

    def create(self, name: str, data: Content, *, content_type: str = DEFAULT_TYPE) -> bool:
        parts = self.store._parts(name)
        try:
            dfd = self.store._open_dir(parts[:-1], create=True)
            try:
                tmp, _ = write_temp(dfd, data, OBJECT_MODE)
                try:
                    created = create_once(dfd, tmp, parts[-1])
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dfd)
                    raise
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise write_error(name, e) from None
        return created

    def head(self, name: str) -> ObjectHead | None:
        parts = self.store._parts(name)
        try:
            dfd = self.store._open_dir(parts[:-1])
            try:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise self.store._not_followed(name, dfd, parts[-1])
            finally:
                os.close(dfd)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(f"cannot stat {name}: {e.strerror}") from None
        return ObjectHead(st.st_size, local_etag(st))

    def copy(self, src: str, dst: str, *, content_type: str, cold: bool = False) -> str:
        try:
            src_fd = self.store._open_object(src)
        except FileNotFoundError:
            raise ObjectMissing(src) from None
        except OSError as e:
            raise StorageError(f"cannot read {src}: {e.strerror}") from None
        try:
            return self._replace(dst, lambda dfd: copy_temp(dfd, src_fd, OBJECT_MODE))
        finally:
            os.close(src_fd)

    # ------------------------------------------------------------------ no uploads in parts
    def start_upload(self, name: str, *, content_type: str, cold: bool = False) -> str:
        raise StorageError(f"{name}: a local directory takes no uploads in parts")

    def upload_part(self, name: str, upload_id: str, number: int, data: Content) -> Part:
        raise StorageError(f"{name}: a local directory takes no uploads in parts")

    def copy_part(
        self, name: str, upload_id: str, number: int, src: str, start: int, length: int
    ) -> Part:
        raise StorageError(f"{name}: a local directory takes no uploads in parts")

    def list_parts(self, name: str, upload_id: str) -> dict[int, Part] | None:
        return None

    def complete_upload(self, name: str, upload_id: str, parts: Sequence[Part]) -> str:
        raise StorageError(f"{name}: a local directory takes no uploads in parts")

    def abort(self, name: str, upload_id: str) -> None:
        pass

    def uploads(self, prefix: str) -> Iterator[PendingUpload]:
        return iter(())

    def listing(self, prefix: str) -> Iterator[tuple[str, ObjectHead]]:
        for name, _size in self.store.list(prefix):
            found = self.head(name)
            if found is not None:  # removed since it was listed: not there
                yield name, found
