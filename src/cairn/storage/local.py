"""A repository in a local directory (or any mounted filesystem).

Writes are atomic and write-once: the object goes to a temporary file in the same directory,
is fsynced, hard-linked into place only if no object of that name exists, and the directory is
fsynced. A crash leaves at most a stray ``.tmp-*`` file, which ``list`` never reports.
"""

from __future__ import annotations

import errno
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cairn.core.errors import ObjectMissing, StorageError
from cairn.storage.base import Buffer

TMP_PREFIX = ".tmp-"


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._handles = _Handles()

    def describe(self) -> str:
        return f"local:{self.root}"

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise StorageError(f"invalid object name {name!r}")
        return self.root / name

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        try:
            if length is None:
                with open(path, "rb", buffering=0) as f:
                    f.seek(offset)
                    return f.read()
            with self._handles.open(path) as fd:
                return _pread_exactly(fd, length, offset)
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except OSError as e:
            raise StorageError(f"cannot read {name}: {e.strerror}") from None

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        try:
            with self._handles.open(self._path(name)) as fd:
                got = 0
                while got < len(out):
                    n = os.preadv(fd, [out[got:]], offset + got)
                    if not n:
                        break
                    got += n
                return got
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except OSError as e:
            raise StorageError(f"cannot read {name}: {e.strerror}") from None

    def write(self, name: str, data: Buffer, *, metadata: bool = True) -> None:
        path = self._path(name)
        tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            _link_once(tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if e.errno == errno.ENOSPC:
                raise StorageError(f"cannot write {name}: no space left on device") from None
            raise StorageError(f"cannot write {name}: {e.strerror}") from None

    def stat(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except OSError as e:
            raise StorageError(f"cannot stat {name}: {e.strerror}") from None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if not start.is_dir():
            if not self.root.is_dir():
                raise StorageError(f"repository directory {self.root} does not exist")
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel + "/"
            for fn in sorted(filenames):
                if fn.startswith(TMP_PREFIX):
                    continue
                name = rel + fn
                if not name.startswith(prefix):
                    continue
                try:
                    size = os.stat(os.path.join(dirpath, fn)).st_size
                except FileNotFoundError:
                    continue
                yield name, size

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(f"cannot delete {name}: {e.strerror}") from None


def _link_once(tmp: Path, path: Path) -> None:
    """Puts ``tmp`` in place as ``path`` unless ``path`` exists (write-once, like S3's
    If-None-Match); falls back to rename on filesystems without hardlinks."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # the object is already there and objects never change
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if not path.exists():
            os.rename(tmp, path)
            return
    tmp.unlink(missing_ok=True)


def _pread_exactly(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class _Handles:
    """Read-only descriptors of recently read objects, shared by threads (pread needs no
    seek). Objects never change, so a cached descriptor never reads stale data; a restore
    that reads thousands of blobs from a few packs opens each pack once."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._fds: OrderedDict[Path, list[int]] = OrderedDict()  # path -> [fd, users]
        self._closing: dict[int, int] = {}  # evicted fd -> users still reading it

    @contextmanager
    def open(self, path: Path) -> Iterator[int]:
        with self._lock:
            entry = self._fds.get(path)
            if entry is not None:
                self._fds.move_to_end(path)
                entry[1] += 1
        if entry is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            with self._lock:
                entry = self._fds.get(path)
                if entry is None:
                    entry = self._fds[path] = [fd, 1]
                    fd = -1
                else:
                    entry[1] += 1
                self._evict()
            if fd >= 0:
                os.close(fd)  # another thread opened it meanwhile
        fd = entry[0]
        try:
            yield fd
        finally:
            with self._lock:
                if fd in self._closing:
                    self._closing[fd] -= 1
                    if not self._closing[fd]:
                        del self._closing[fd]
                        os.close(fd)
                else:
                    entry[1] -= 1

    def _evict(self) -> None:
        while len(self._fds) > self._size:
            _, (fd, users) = self._fds.popitem(last=False)
            if users:
                self._closing[fd] = users
            else:
                os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
