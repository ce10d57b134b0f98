"""A local copy of the repository objects that never change and are read again and again:
index objects, snapshots and tree packs (docs/format.md §11.6).

On an object store every command pays for what it reads: a backup downloads the whole index
to know what is stored, a prune the index, every snapshot and every tree pack, a restore the
index and its trees, and each of these is requests, egress and round trips. These objects are
immutable and named by the BLAKE3 hash of their bytes (§2), so a copy kept on this machine can
be checked against its name and used in place of the store's. ``ObjectCache`` is a storage
wrapper that does this:

- a read of an object that has a copy here is served from the copy;
- a whole-object read of an index object or a snapshot (how they are always read) keeps a
  copy of what it got, as does a write of one (``write`` through the cache), and the write of
  a tree pack (a pack written with ``metadata=True``, §5.5); a tree pack written by another
  host is copied here by ``fetch`` (what a prune or a walk of every tree asks for: it would
  read nearly all of the pack anyway), in ranges of at most ``FETCH_BYTES``;
- a copy is used only once its BLAKE3 hash has been found equal to its name, once per process;
  one that is not (damaged on this disk, or tampered with) is deleted and the store read;
- copies of objects that are gone from the store are dropped: those deleted through this
  wrapper at once, those not in a complete listing of index/ or snapshots/ when it ends, and
  tree packs the index no longer lists (``retain_packs``), each only if older than ``GRACE``
  (another command of this host may have just written it).

A copy that cannot be written (a full disk, no permission) is not an error: the command goes on
reading the store, with one notice. ``reads`` counts what was read from the store in place of
the copies (requests and bytes), for the estimates of the commands that run on the cache.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import blake3

from cairn.repo import layout
from cairn.storage.base import (
    Content,
    Storage,
    StorageWrapper,
    content_chunks,
)

FETCH_BYTES = 8 << 20  # one request of a fetch reads at most this much
GRACE = 3600.0  # seconds: a copy younger than this is never dropped for being unlisted
# the names a copy is kept of (nothing else becomes a path here): content-addressed objects
_KEPT = re.compile(r"(index|snapshots)/[0-9a-f]{64}|data/([0-9a-f]{2})/\2[0-9a-f]{62}")
_PREFIXES = (layout.INDEX, layout.SNAPSHOTS)


def keeps(name: str) -> bool:
    return _KEPT.fullmatch(name) is not None


class ObjectCache(StorageWrapper):
    """``inner`` with copies of its immutable objects kept under ``directory``."""

    def __init__(
        self,
        inner: Storage,
        directory: Path,
        notice: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(inner)
        self.directory = directory
        self.notice = notice
        self.reads: Counter[str] = Counter()  # get, head, bytes_down made of the store
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}
        self._checked: set[str] = set()  # copies whose hash matched their name, this process
        self._absent: set[str] = set()  # names found without a copy (data packs, mostly)
        self._broken = False  # a copy could not be written: no more are tried

    # ----------------------------------------------------------------- the storage contract
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._copy(name)
        if path is not None:
            try:  # the whole object, checked: short only where the object ends
                with open(path, "rb") as f:
                    f.seek(offset)
                    return f.read() if length is None else f.read(length)
            except OSError:
                pass  # gone meanwhile: the store's
        data = self.inner.read(name, offset, length)
        if not keeps(name):
            return data
        self._count(len(data))
        if offset == 0 and length is None and name.startswith(_PREFIXES):
            self._keep(name, [memoryview(data)])
        return data

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        path = self._copy(name)
        if path is not None:
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    return os.preadv(fd, [out], offset)
                finally:
                    os.close(fd)
            except OSError:
                pass
        n = self.inner.read_into(name, offset, out)
        if keeps(name):
            self._count(n)
        return n

    def write(self, name: str, data: Content, *, metadata: bool = True) -> None:
        self.inner.write(name, data, metadata=metadata)
        if keeps(name) and (metadata or not name.startswith(layout.DATA)):
            self._keep(name, content_chunks(data))

    def delete(self, name: str) -> None:
        self.inner.delete(name)
        if keeps(name):
            self._drop(name)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        if prefix not in _PREFIXES:
            yield from self.inner.list(prefix)
            return
        started = time.time()
        listed: set[str] = set()
        for name, size in self.inner.list(prefix):
            listed.add(name)
            yield name, size
        # the listing is complete: copies of objects it did not list are of objects gone
        self._drop_unlisted(prefix, listed, started)

    def saw(self, names: dict[str, dict[str, int]], started: float) -> None:
        """A complete listing of the whole repository, begun at ``started`` (``time.time()``),
        saw ``names`` (prefix -> name -> size): copies of objects it did not list are of
        objects gone."""
        for prefix in _PREFIXES:
            self._drop_unlisted(prefix, set(names.get(prefix, ())), started)

    def holds(self, name: str) -> bool:
        """Whether reads of ``name`` are served by a checked copy on this host."""
        return self._copy(name) is not None

    # ----------------------------------------------------------------- tree packs
    def fetch(self, name: str, size: int | None = None) -> bool:
        """Makes sure this host has a checked copy of the whole object ``name`` (a tree pack of
        ``size`` bytes; None: asked of the store); False if it cannot be kept here (the caller
        reads the store). The store's errors are raised."""
        if not keeps(name):
            return False
        if self._copy(name) is not None:
            return True
        if self._broken:
            return False
        with self._lock:
            lock = self._fetching.setdefault(name, threading.Lock())
        with lock:  # one fetch of a pack at a time; the others then find the copy
            if self._copy(name) is not None:
                return True
            if size is None:
                size = self.inner.stat(name)
                with self._lock:
                    self.reads["head"] += 1
            return self._keep(name, self._ranges(name, size))

    def retain_packs(self, names: Iterable[str]) -> None:
        """``names``: every tree pack the index lists (a complete index was just read); copies
        of other packs are dropped."""
        self._drop_unlisted(layout.DATA, set(names), time.time())

    # ----------------------------------------------------------------- copies
    def _path(self, name: str) -> Path:
        return self.directory / name

    def _copy(self, name: str) -> Path | None:
        """The path of a checked copy of ``name``, or None."""
        if not keeps(name):
            return None
        path = self._path(name)
        with self._lock:
            checked = name in self._checked
            if name in self._absent:
                return None
        if checked:
            return path if path.exists() else None
        h = blake3.blake3()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError:  # none here (or unreadable): the store's
            with self._lock:
                self._absent.add(name)
            return None
        if h.hexdigest() != layout.id_of(name):
            self._drop(name)
            self._say(name, "the local copy did not match its name; read from the store")
            return None
        with self._lock:
            self._checked.add(name)
        return path

    def _ranges(self, name: str, size: int) -> Iterator[memoryview]:
        for start in range(0, size, FETCH_BYTES):
            want = min(FETCH_BYTES, size - start)
            data = self.inner.read(name, start, want)
            self._count(len(data))
            if len(data) != want:
                raise _Short()
            yield memoryview(data)

    def _keep(self, name: str, chunks: Iterable[memoryview]) -> bool:
        """Writes a copy of ``name`` from ``chunks`` (atomically, mode 0600), kept only if its
        hash is its name. False if it was not kept."""
        if self._broken:
            return False
        path = self._path(name)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        h = blake3.blake3()
        try:
            self._directories(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
            if h.hexdigest() != layout.id_of(name):
                os.unlink(tmp)
                return False
            os.replace(tmp, path)
        except _Short:
            _unlink(tmp)
            return False
        except OSError as e:
            _unlink(tmp)
            with self._lock:
                self._broken = True
            self._say(str(self.directory), f"local copies of objects not kept: {e.strerror}")
            return False
        except BaseException:
            _unlink(tmp)
            raise
        with self._lock:
            self._checked.add(name)
            self._absent.discard(name)
        return True

    def _directories(self, path: Path) -> None:
        """``path`` and its parents up to ``directory``, each made private (0700)."""
        if path.is_dir():
            return
        if path != self.directory:
            self._directories(path.parent)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise

    def _drop(self, name: str) -> None:
        with self._lock:
            self._checked.discard(name)
        _unlink(self._path(name))

    def _drop_unlisted(self, prefix: str, listed: set[str], started: float) -> None:
        top = self.directory / prefix.rstrip("/")
        try:
            paths = list(top.rglob("*"))
        except OSError:
            return
        for path in paths:
            name = path.relative_to(self.directory).as_posix()
            if not keeps(name) or name in listed:
                continue
            try:
                if path.stat().st_mtime < started - GRACE:
                    self._drop(name)
            except OSError:
                continue

    def _count(self, n: int) -> None:
        with self._lock:
            self.reads["get"] += 1
            self.reads["bytes_down"] += n

    def _say(self, obj: str, message: str) -> None:
        if self.notice is not None:
            self.notice(obj, message)


class _Short(Exception):
    """The store's object was shorter than its listed size: not kept."""


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
