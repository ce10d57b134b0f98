"""Pulling a mirror (docs/mirror.md §6, §8): a local directory made equal to the newest
generation's manifest, with reads alone (a plain HTTP server in front of the bucket will do).

In order: the marker, the newest head and its manifest are read and checked (``reader``); with
``delete``, what the manifest does not have is removed (and a directory where the manifest has
something else); directories are made; symbolic links, FIFOs and device nodes are made where
they differ; files are kept where they already are the manifest's, else downloaded on
``workers`` threads (``fetch``: into a temporary file, checked against their BLAKE3, renamed
into place); the other names of hard-link groups are linked; and directories get their
metadata last, deepest first. A problem with one entry is reported and the rest goes on.

Nothing is written outside ``dest``: every path is checked (``keys.check_path``), the manifest
must form a tree (``manifest.check_tree``), and every name is reached from an open directory
descriptor without following a symbolic link (``cairn.ops.safefs``). ``include`` selects paths
with restic's patterns (a path, everything below it, and its parents as needed); ``delete``
then removes only what the patterns select.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from cairn.core.errors import CairnError, RepositoryError
from cairn.model.node import DIR, FILE, SOCKET, is_safe_name
from cairn.ops.filter_patterns import PatternList
from cairn.ops.mirror.codec import Codec, open_codec
from cairn.ops.mirror.fetch import Fetched, Fetcher
from cairn.ops.mirror.localfs import (
    as_node,
    make_special,
    remove_tree,
    replace,
    special_is_current,
    sync_meta_fd,
    temp_name,
)
from cairn.ops.mirror.manifest import Entry
from cairn.ops.mirror.reader import MARKER, load_manifest, newest_head, read_marker
from cairn.ops.progress import NullProgress, Progress
from cairn.ops.safefs import Target
from cairn.storage.base import Storage


class NothingCommitted(RepositoryError):
    """A mirror that has no generation yet: there is nothing to pull."""


class BadDestination(CairnError):
    """A destination that cannot be made or opened as a directory."""


@dataclass
class PullResult:
    generation: int
    downloaded: int = 0  # files downloaded
    bytes: int = 0  # bytes downloaded
    kept: int = 0  # files that already were the manifest's
    linked: int = 0  # other names of hard-link groups, linked
    dirs: int = 0
    others: int = 0  # symbolic links, FIFOs, device nodes made (not those already there)
    removed: int = 0  # local entries removed (``delete``)
    errors: list[tuple[bytes, str]] = field(default_factory=list)  # (path, one line)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.__dict__)
        out["errors"] = len(self.errors)
        return out


def pull(
    store: Storage,
    dest: bytes,
    *,
    delete: bool = False,
    include: PatternList | None = None,
    checksum: bool = False,
    workers: int = 4,
    prefix_len: int | None = None,
    progress: Progress | None = None,
    password: Callable[[], bytes] | None = None,
) -> PullResult:
    """Makes ``dest`` (created if missing) equal to the newest generation of the mirror in
    ``store``, or its part ``include`` selects. ``prefix_len``: the length in bytes of the
    bucket prefix object keys were made for (docs/mirror.md §3); None: the marker's.
    ``checksum``: a local file of the right size and time is read and hashed, not trusted.
    ``password``: called for an encrypted mirror's (docs/mirror.md §8), never for a plain one.
    Raises for a store that is no mirror or whose manifest fails its checks; a problem with
    one entry is in the result's ``errors``."""
    marker = read_marker(store)
    if prefix_len is None:
        prefix_len = marker.prefix_bytes
    codec = open_codec(marker.encryption, prefix_len, password)
    head = newest_head(store, codec=codec)
    if head is None:
        raise NothingCommitted(f"{store.describe()}: the mirror has no generation yet")
    entries = load_manifest(store, head, codec)
    include = include or PatternList([])
    chosen = select(entries, include)
    try:
        target = Target(dest)
    except OSError as e:
        shown = os.fsdecode(dest)
        raise BadDestination(f"cannot pull into {shown}: {e.strerror or e}") from None
    try:
        if _holds_a_mirror(target):
            shown = os.fsdecode(dest)
            raise BadDestination(f"{shown} holds a mirror itself; pull into another directory")
        run = _Pull(store, target, chosen, progress or NullProgress(), PullResult(head.generation))
        if delete:
            run.remove_extra(entries, include)
        run.make_entries(checksum, max(1, workers), codec)
        return run.result
    finally:
        target.close()


def _holds_a_mirror(target: Target) -> bool:
    """Whether the destination is a mirror's own directory (a local-directory mirror), which a
    pull would overwrite, or with ``delete`` remove."""
    try:
        st = os.stat(MARKER, dir_fd=target.fd, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode)


def select(entries: dict[bytes, Entry], include: PatternList) -> dict[bytes, Entry]:
    """The entries ``include`` selects and their parents, by path in order (parents first)."""
    if not include:
        return dict(sorted(entries.items()))
    paths: set[bytes] = set()
    for path in entries:
        if include.matches(b"/" + path):
            paths.add(path)
            parent = path.rpartition(b"/")[0]
            while parent and parent not in paths:
                paths.add(parent)
                parent = parent.rpartition(b"/")[0]
    return {p: entries[p] for p in sorted(paths)}


class _Pull:
    def __init__(
        self,
        store: Storage,
        target: Target,
        chosen: dict[bytes, Entry],
        progress: Progress,
        result: PullResult,
    ) -> None:
        self.store = store
        self.target = target
        self.chosen = chosen
        self.progress = progress
        self.result = result

    def error(self, path: bytes, e: BaseException | str) -> None:
        message = e if isinstance(e, str) else _message(e)
        self.result.errors.append((path, message))
        self.progress.warning(path, message)

    # ------------------------------------------------------------------ delete
    def remove_extra(self, entries: dict[bytes, Entry], include: PatternList) -> None:
        """Removes what is below the target and not in the manifest (of what ``include``
        selects), and directories where a selected entry is something else."""
        todo: list[bytes] = [b""]
        while todo:
            rel = todo.pop()
            try:
                fd = self.target.open_dir(rel.split(b"/") if rel else ())
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    self.error(rel or b".", e)
                continue  # not there (yet), or not a directory: nothing below it to remove
            try:
                for name, is_dir in _listing(fd):
                    path = rel + b"/" + name if rel else name
                    entry = entries.get(path)
                    wanted = path in self.chosen
                    extra = entry is None and (not include or include.matches(b"/" + path))
                    in_the_way = wanted and is_dir and entry is not None and entry.type != DIR
                    if extra or in_the_way:
                        self._remove(fd, name, path)
                    elif wanted and is_dir:
                        todo.append(path)
            except OSError as e:
                self.error(rel or b".", e)
            finally:
                os.close(fd)

    def _remove(self, parent_fd: int, name: bytes, path: bytes) -> None:
        try:
            self.result.removed += remove_tree(parent_fd, name)
        except OSError as e:
            self.error(path, e)

    # ------------------------------------------------------------------ make
    def make_entries(self, checksum: bool, workers: int, codec: Codec) -> None:
        dirs: list[Entry] = []
        files: list[tuple[Entry, bool]] = []
        groups: dict[int, list[Entry]] = {}
        for entry in self.chosen.values():
            if not is_safe_name(entry.path.rpartition(b"/")[2]):
                self.error(entry.path, "a name no file system can hold, left out")
                continue
            if entry.type == DIR:
                if self._make_dir(entry):
                    dirs.append(entry)
            elif entry.type == FILE:
                if entry.link:
                    group = groups.setdefault(entry.link, [])
                    group.append(entry)
                    if len(group) > 1:
                        continue  # linked to the first once that one is in place
                files.append((entry, bool(entry.link)))
            elif entry.type != SOCKET:  # a socket belongs to a running program
                self._make_special(entry)
        nbytes = sum(e.size for e, _ in files)
        self.progress.start("pull", len(files), nbytes)
        fetcher = Fetcher(
            self.store, self.target, checksum=checksum, on_bytes=self._bytes, codec=codec
        )
        failed = self._files(fetcher, files, workers, codec)
        for group in groups.values():
            self._link(group, failed)
        for entry in reversed(dirs):
            self._finish_dir(entry)

    def _bytes(self, n: int) -> None:
        self.progress.bytes_done(n)

    def _make_dir(self, entry: Entry) -> bool:
        parts = tuple(entry.path.split(b"/"))
        try:
            self.target.make_dir(self.target.dir_fd(parts[:-1]), parts[-1])
        except OSError as e:
            self.error(entry.path, e)
            return False
        self.result.dirs += 1
        return True

    def _make_special(self, entry: Entry) -> None:
        parts = tuple(entry.path.split(b"/"))
        node = as_node(entry)
        try:
            pfd = self.target.dir_fd(parts[:-1])
            if special_is_current(pfd, parts[-1], node):
                return
            problems = make_special(pfd, parts[-1], node)
        except OSError as e:
            self.error(entry.path, e)
            return
        self.result.others += 1
        for problem in problems:
            self.error(entry.path, problem)

    def _files(
        self,
        fetcher: Fetcher,
        files: list[tuple[Entry, bool]],
        workers: int,
        codec: Codec,
    ) -> set[bytes]:
        """Every file kept or downloaded, on ``workers`` threads, at most a few per thread in
        flight; the paths of the files that failed."""
        failed: set[bytes] = set()
        pending: deque[tuple[Entry, Future[Fetched]]] = deque()

        def collect() -> None:
            entry, future = pending.popleft()
            try:
                done = future.result()
            except (OSError, CairnError) as e:
                failed.add(entry.path)
                self.error(entry.path, e)
                return
            if done.kept:
                self.result.kept += 1
            else:
                self.result.downloaded += 1
                self.result.bytes += done.downloaded
            for problem in done.problems:
                self.error(entry.path, problem)
            self.progress.item_done(entry.path, entry.size)

        with ThreadPoolExecutor(workers, thread_name_prefix="cairn-pull") as pool:
            for entry, shared in files:
                try:
                    key = codec.key(entry.path)
                except ValueError as e:
                    failed.add(entry.path)
                    self.error(entry.path, str(e))
                    continue
                pending.append((entry, pool.submit(fetcher.sync, entry, key, shared)))
                while len(pending) > 4 * workers:
                    collect()
            while pending:
                collect()
        return failed

    def _link(self, group: list[Entry], failed: set[bytes]) -> None:
        """The other names of a hard-link group, linked to its first (already in place)."""
        first = tuple(group[0].path.split(b"/"))
        for entry in group[1:]:
            if group[0].path in failed:
                self.error(entry.path, "not linked: the first name of its hard-link group failed")
                continue
            try:
                if self._link_one(first, tuple(entry.path.split(b"/"))):
                    self.result.linked += 1
                else:
                    self.result.kept += 1
            except OSError as e:
                self.error(entry.path, e)

    def _link_one(self, first: tuple[bytes, ...], parts: tuple[bytes, ...]) -> bool:
        """Links ``parts`` to ``first`` unless it is already that file; whether it linked."""
        target = self.target
        src = target.open_dir(first[:-1])
        try:
            dst = target.open_dir(parts[:-1])
            try:
                want = os.stat(first[-1], dir_fd=src, follow_symlinks=False)
                if not stat.S_ISREG(want.st_mode):
                    raise OSError(errno.EINVAL, "the first name of its hard-link group is no file")
                try:
                    have = os.stat(parts[-1], dir_fd=dst, follow_symlinks=False)
                    if (have.st_dev, have.st_ino) == (want.st_dev, want.st_ino):
                        return False
                except FileNotFoundError:
                    pass
                tmp = temp_name()
                os.link(first[-1], tmp, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)
                try:
                    replace(dst, tmp, parts[-1])
                except BaseException:
                    os.unlink(tmp, dir_fd=dst)
                    raise
                return True
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def _finish_dir(self, entry: Entry) -> None:
        try:
            fd = self.target.dir_fd(tuple(entry.path.split(b"/")))
            problems = sync_meta_fd(fd, as_node(entry), force=True)
        except OSError as e:
            self.error(entry.path, e)
            return
        for problem in problems:
            self.error(entry.path, problem)


def _listing(fd: int) -> Iterator[tuple[bytes, bool]]:
    """The names in the directory ``fd``, each with whether it is a directory (not a link)."""
    with os.scandir(fd) as it:
        names = [os.fsencode(e.name) for e in it]
    for name in names:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield name, stat.S_ISDIR(st.st_mode)


def _message(e: BaseException) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)
