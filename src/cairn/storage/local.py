"""A repository in a local directory (or any mounted filesystem).

Writes are atomic and write-once: the object goes to a temporary file in the same directory,
is fsynced, hard-linked into place only if no object of that name exists, and the directory is
fsynced (cairn.storage.localfiles). A crash leaves at most a stray ``.tmp-*`` file, which
``list`` never reports. The object capability (``objects``: overwrites, create-only writes,
copies, for mirrors) is cairn.storage.localobjects.

Nothing inside the repository is reached through a symbolic link: every object is opened one
path component at a time from the repository directory, each with O_NOFOLLOW, and a listing
that meets a symbolic link (or anything but files and directories) fails with a StorageError
that names it. A link planted inside the repository (``data`` pointing elsewhere) would
otherwise let a prune delete, or a backup write, files outside it. The repository directory
itself may be a symbolic link: that is the user's choice.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cairn.core.errors import ObjectMissing, StorageError
from cairn.storage.archive import ArchiveStore
from cairn.storage.base import Content
from cairn.storage.localfiles import TMP_PREFIX, create_once, write_error, write_temp
from cairn.storage.localobjects import LocalObjects
from cairn.storage.objectlock import ObjectLockStore
from cairn.storage.objects import ObjectStore
from cairn.storage.versions import VersionStore

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalStorage:
    archive: ArchiveStore | None = None  # a directory has no storage classes
    versions: VersionStore | None = None  # no object versions
    object_lock: ObjectLockStore | None = None  # no retention periods

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._handles = _Handles()

    def describe(self) -> str:
        return f"local:{self.root}"

    @property
    def objects(self) -> ObjectStore:
        return LocalObjects(self, self._handles.forget)

    def _parts(self, name: str) -> list[str]:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"invalid object name {name!r}")
        return parts

    def _open_dir(self, parts: list[str], create: bool = False) -> int:
        """A descriptor of the directory ``parts`` below the root, reached without following a
        symbolic link (FileNotFoundError if it does not exist and ``create`` is false)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for i, part in enumerate(parts):
                try:
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o777, dir_fd=fd)
                    sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ENOTDIR, errno.ELOOP):
                        raise self._not_followed("/".join(parts[: i + 1]), fd, part) from None
                    raise
                os.close(fd)
                fd = sub
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _not_followed(self, shown: str, dir_fd: int, name: str) -> StorageError:
        """The error for ``name`` in ``dir_fd``, met where a directory or an object belongs
        but not one (a symbolic link, most often)."""
        try:
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        kind = (
            "a symbolic link"
            if stat.S_ISLNK(mode)
            else "a file, not a directory"
            if stat.S_ISREG(mode)
            else "a directory, not a file"
            if stat.S_ISDIR(mode)
            else "neither a file nor a directory"
        )
        return StorageError(
            f"{self.describe()}: {shown} is {kind}; cairn uses only files and directories "
            "inside a repository, and never follows a link there"
        )

    def _open_object(self, name: str) -> int:
        """A read-only descriptor of object ``name``: a regular file, never through a link."""
        parts = self._parts(name)
        dfd = self._open_dir(parts[:-1])
        try:
            # O_NONBLOCK: a FIFO planted under an object's name must not hang the open; it
            # changes nothing for a regular file
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(parts[-1], flags, dir_fd=dfd)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise self._not_followed(name, dfd, parts[-1]) from None
                raise
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise self._not_followed(name, dfd, parts[-1])
            return fd
        finally:
            os.close(dfd)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            if length is None:
                fd = self._open_object(name)
                with open(fd, "rb", buffering=0, closefd=True) as f:
                    f.seek(offset)
                    return f.read()
            with self._handles.open(name, self._open_object) as fd:
                return _pread_exactly(fd, length, offset)
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except OSError as e:
            raise StorageError(f"cannot read {name}: {e.strerror}") from None

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        try:
            with self._handles.open(name, self._open_object) as fd:
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

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        parts = self._parts(name)
        dfd = -1
        try:
            dfd = self._open_dir(parts[:-1], create=True)
            tmp, _ = write_temp(dfd, data)
            try:
                create_once(dfd, tmp, parts[-1])  # if it exists: objects never change
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
                raise
            os.fsync(dfd)
        except OSError as e:
            raise write_error(name, e) from None
        finally:
            if dfd >= 0:
                os.close(dfd)

    def stat(self, name: str) -> int:
        parts = self._parts(name)
        try:
            dfd = self._open_dir(parts[:-1])
            try:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise self._not_followed(name, dfd, parts[-1])
                return st.st_size
            finally:
                os.close(dfd)
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except OSError as e:
            raise StorageError(f"cannot stat {name}: {e.strerror}") from None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        try:
            fd = self._open_dir(self._parts(base) if base else [])
        except FileNotFoundError:
            if not self.root.is_dir():
                raise StorageError(f"repository directory {self.root} does not exist") from None
            return
        except OSError as e:
            raise StorageError(f"cannot list {prefix or self.root}: {e.strerror}") from None
        yield from self._walk(fd, base + "/" if base else "", prefix)

    def _walk(self, fd: int, rel: str, prefix: str) -> Iterator[tuple[str, int]]:
        """The objects below the open directory ``fd`` (which it closes), named ``rel...``."""
        try:
            with os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                if entry.name.startswith(TMP_PREFIX):
                    continue
                name = rel + entry.name
                if entry.is_dir(follow_symlinks=False):
                    inside = name + "/"
                    if inside.startswith(prefix) or prefix.startswith(inside):
                        sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                        yield from self._walk(sub, inside, prefix)
                elif not entry.is_file(follow_symlinks=False):
                    raise self._not_followed(name, fd, entry.name)
                elif name.startswith(prefix):
                    try:
                        size = entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue
                    yield name, size
        except OSError as e:
            raise StorageError(f"cannot list {rel or self.root}: {e.strerror}") from None
        finally:
            os.close(fd)

    def delete(self, name: str) -> None:
        parts = self._parts(name)
        try:
            dfd = self._open_dir(parts[:-1])
            try:
                os.unlink(parts[-1], dir_fd=dfd)  # a symbolic link itself, never its target
            finally:
                os.close(dfd)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(f"cannot delete {name}: {e.strerror}") from None


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
    seek). Repository objects never change, so a cached descriptor never reads stale data; a
    restore that reads thousands of blobs from a few packs opens each pack once. The object
    capability, which replaces objects, drops the descriptor of each object it replaces
    (``forget``)."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._fds: OrderedDict[str, list[int]] = OrderedDict()  # object name -> [fd, users]
        self._closing: dict[int, int] = {}  # evicted fd -> users still reading it

    @contextmanager
    def open(self, name: str, opener: Callable[[str], int]) -> Iterator[int]:
        with self._lock:
            entry = self._fds.get(name)
            if entry is not None:
                self._fds.move_to_end(name)
                entry[1] += 1
        if entry is None:
            fd = opener(name)
            with self._lock:
                entry = self._fds.get(name)
                if entry is None:
                    entry = self._fds[name] = [fd, 1]
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

    def forget(self, name: str) -> None:
        """The object ``name`` was replaced: its descriptor is not handed out again."""
        with self._lock:
            entry = self._fds.pop(name, None)
            if entry is not None:
                self._retire(*entry)

    def _evict(self) -> None:
        while len(self._fds) > self._size:
            _, (fd, users) = self._fds.popitem(last=False)
            self._retire(fd, users)

    def _retire(self, fd: int, users: int) -> None:
        """Closes ``fd`` now, or when its last user is done (the lock held)."""
        if users:
            self._closing[fd] = users
        else:
            os.close(fd)
