"""A repository in a local directory (or any mounted filesystem).

Writes are atomic and write-once: the object goes to a temporary file in the same directory,
is fsynced, hard-linked into place only if no object of that name exists, and the directory is
fsynced. A crash leaves at most a stray ``.tmp-*`` file, which ``list`` never reports.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from cairn.core.errors import ObjectMissing, StorageError
from cairn.storage.base import Buffer

TMP_PREFIX = ".tmp-"


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"local:{self.root}"

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise StorageError(f"invalid object name {name!r}")
        return self.root / name

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        try:
            with open(path, "rb", buffering=0) as f:
                if offset:
                    f.seek(offset)
                data = f.read() if length is None else _read_exactly(f, length)
        except FileNotFoundError:
            raise ObjectMissing(name) from None
        except OSError as e:
            raise StorageError(f"cannot read {name}: {e.strerror}") from None
        return data

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


def _read_exactly(f, length: int) -> bytes:  # type: ignore[no-untyped-def]
    buf = bytearray(length)
    view = memoryview(buf)
    got = 0
    while got < length:
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return bytes(buf) if got == length else bytes(buf[:got])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
