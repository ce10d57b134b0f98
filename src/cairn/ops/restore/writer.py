"""Creating a restore's entries under its target, never outside it (``cairn.ops.safefs``).

A file is created with its final mode where the umask allows it (one call less per file), its
blobs written where they belong, zeros left as holes (``cairn.ops.restore.zeros``: sparse files
stay sparse, and their holes cost nothing), and completed: its size, its metadata
(``cairn.ops.fsapply``), closed. A file whose content fails is removed, never left with wrong
bytes. Directories get their metadata last (``finish_dir``), so that writing into them does not
disturb their times and read-only ones can be filled.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterable

from cairn.core.errors import CairnError
from cairn.model.node import BLOCKDEV, CHARDEV, FIFO, SOCKET, SYMLINK
from cairn.ops.fsapply import (
    apply_by_name,
    apply_to_fd,
    creation_mode,
    owned_from_creation,
    process_umask,
)
from cairn.ops.restore.plan import Entry
from cairn.ops.restore.tally import Tally
from cairn.ops.restore.zeros import write_data
from cairn.ops.safefs import Target


class FileWriter:
    def __init__(self, target: Target, tally: Tally) -> None:
        self.target = target
        self.tally = tally
        self._umask = process_umask()

    def make_dir(self, entry: Entry) -> None:
        target = self.target
        target.make_dir(target.dir_fd(entry.parts[:-1]), entry.parts[-1])
        self.tally.summary.dirs += 1

    def finish_dir(self, entry: Entry) -> None:
        """A directory's metadata, once everything in it is restored (empty ``parts``: the
        target itself)."""
        fd = self.target.dir_fd(entry.parts)
        for problem in apply_to_fd(fd, entry.node):
            self.tally.error(b"/".join(entry.parts) or b".", problem)

    def make_special(self, entry: Entry) -> None:
        """A symlink, FIFO or device node, with its metadata."""
        node, name = entry.node, entry.parts[-1]
        if node.type == SOCKET:
            return  # a socket belongs to a running program; there is nothing to restore
        target = self.target
        pfd = target.dir_fd(entry.parts[:-1])
        target.clear(pfd, name)
        if node.type == SYMLINK:
            os.symlink(node.target or b"", name, dir_fd=pfd)
        elif node.type == FIFO:
            os.mkfifo(name, 0o600, dir_fd=pfd)
        elif node.type in (CHARDEV, BLOCKDEV):
            kind = 0o020000 if node.type == CHARDEV else 0o060000
            os.mknod(name, kind | 0o600, node.rdev, dir_fd=pfd)
        path = b"/".join(entry.parts)
        for problem in apply_by_name(pfd, name, node):
            self.tally.error(path, problem)
        self.tally.summary.others += 1

    def create(self, entry: Entry, reopenable: bool = False) -> int:
        """A new file for ``entry``, open for writing, with its final mode where the umask lets
        it (see ``complete``). ``reopenable``: a mode that lets its owner open it for writing
        again (``reopen``); pass the same to ``complete``."""
        target = self.target
        mode = self._mode(entry, reopenable)
        return target.create_file(
            target.dir_fd(entry.parts[:-1]), entry.parts[-1], 0o600 if mode is None else mode
        )

    def reopen(self, entry: Entry) -> int:
        """A file made by ``create(entry, reopenable=True)`` and closed, open for writing again."""
        target = self.target
        return target.reopen_file(target.dir_fd(entry.parts[:-1]), entry.parts[-1])

    def remove(self, entry: Entry) -> None:
        """A file this restore did not complete, removed."""
        target = self.target
        target.clear(target.dir_fd(entry.parts[:-1]), entry.parts[-1])

    def _mode(self, entry: Entry, reopenable: bool) -> int | None:
        """The mode ``entry``'s file is created with, when it is its final one; else None
        (created 0o600, and chmod once complete)."""
        mode = creation_mode(entry.node, self._umask)
        if mode is None or (reopenable and not mode & 0o200):
            return None
        return mode

    def write(
        self,
        fd: int,
        blobs: Iterable[bytes | memoryview],
        offset: int,
        lock: threading.Lock | None = None,
    ) -> tuple[int, int, int]:
        """Writes ``blobs`` from ``offset`` on in a new file, zeros as holes (``zeros``):
        (bytes written, end of the last bytes written, offset after the last blob). ``lock``:
        held while writing (other threads write other parts of the file)."""
        written = end = 0
        bytes_done = self.tally.progress.bytes_done
        for data in blobs:
            n = len(data)
            with lock or contextlib.nullcontext():
                k, last = write_data(fd, data, offset)
            if k:
                written += k
                end = last
            offset += n
            bytes_done(n)
        return written, end, offset

    def complete(
        self,
        entry: Entry,
        fd: int,
        written: int,
        end: int,
        error: BaseException | None,
        reopenable: bool = False,
    ) -> BaseException | None:
        """Ends a file whose content is written (or failed with ``error``): its size and
        metadata, then close. A failed file is removed; returns the problem (an OSError or
        CairnError; anything else is raised). ``reopenable``: as it was created."""
        node = entry.node
        target = self.target
        try:
            if error is not None:
                raise error
            if end < node.size:
                os.ftruncate(fd, node.size)  # the file ends in a hole
            problems = apply_to_fd(
                fd,
                node,
                owner=target.setgid_seen or not owned_from_creation(node),
                mode=self._mode(entry, reopenable) is None,
            )
        except BaseException as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(entry.parts[-1], dir_fd=target.dir_fd(entry.parts[:-1]))
            if isinstance(e, OSError | CairnError):
                return e
            raise
        os.close(fd)
        path = b"/".join(entry.parts)
        for problem in problems:
            self.tally.error(path, problem)
        self.tally.file_done(path, node.size, written)
        return None

    def link(self, entry: Entry, first: tuple[bytes, ...]) -> None:
        """A later path of a hardlink, linked to the first (which must be a restored file)."""
        target = self.target
        src = target.open_dir(first[:-1])
        try:
            dst = target.open_dir(entry.parts[:-1])
            try:
                st = os.stat(first[-1], dir_fd=src, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, "first path of the hardlink group is not a file")
                target.clear(dst, entry.parts[-1])
                os.link(
                    first[-1],
                    entry.parts[-1],
                    src_dir_fd=src,
                    dst_dir_fd=dst,
                    follow_symlinks=False,
                )
            finally:
                os.close(dst)
        finally:
            os.close(src)
        self.tally.linked(entry.node.size)
