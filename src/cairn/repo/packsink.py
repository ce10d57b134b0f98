"""Where a pack's bytes go while it is built: a buffer in memory, or a temporary file.

A sink hands out room for the next bytes (``room``), which the builder fills in place (the
blobs are encrypted straight into it), and at the end gives the pack's id and content for the
store (``finish``). The id is the BLAKE3 hash of the whole pack (docs/format.md, "Packs").

- ``MemorySink`` keeps the pack in a buffer, one from a pool reused from pack to pack or a
  growable one; the pack goes to the store from that buffer, not copied.
- ``FileSink`` writes the pack to an unnamed temporary file as it fills, through a small
  staging buffer as large as the largest blob, and hashes it on the way: a pack of 40 MiB
  costs no more memory than its largest blob, and is uploaded from the file (the page cache,
  which the kernel gives back under pressure, not the process's own memory).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import blake3

from cairn.core.errors import CairnError
from cairn.storage.base import Content, SpooledContent

PackBuffer = bytearray | memoryview  # a growable one, or a fixed one reused from pack to pack


class SpoolError(CairnError):
    """A pack could not be written to its temporary file (a full disk, most often)."""


class PackSink(Protocol):
    def __len__(self) -> int: ...

    def room(self, n: int) -> Iterator[memoryview]:
        """A context manager: the next ``n`` bytes of the pack, to be filled in the block."""
        ...

    def write(self, data: bytes) -> None:
        """Appends ``data`` (the pack's own prefix and header)."""
        ...

    def finish(self) -> tuple[bytes, Content]:
        """(pack id, the pack): valid until ``close``."""
        ...

    def close(self) -> PackBuffer | None:
        """Gives up the pack; returns a pooled buffer to reuse, if the sink had one."""
        ...


class MemorySink:
    """The pack in ``buffer``, written from its start; a fixed buffer too small for a blob
    moves the pack to a growable one."""

    def __init__(self, buffer: PackBuffer | None = None) -> None:
        self._buf: PackBuffer = buffer if buffer is not None else bytearray()
        self._pos = 0

    def __len__(self) -> int:
        return self._pos

    @contextmanager
    def room(self, n: int) -> Iterator[memoryview]:
        with self.take(n) as view:
            yield view

    def take(self, n: int) -> memoryview:
        """The next ``n`` bytes of the pack, to be filled before anything else is written: the
        plain call that ``room`` wraps (a pack's small blobs skip the context manager)."""
        start, end = self._pos, self._pos + n
        if end > len(self._buf):
            more = max(end - len(self._buf), len(self._buf) // 2)
            if isinstance(self._buf, bytearray):
                self._buf.extend(bytes(more))
            else:  # a fixed buffer: the pack moves to a growable one
                grown = bytearray(len(self._buf) + more)
                grown[:start] = self._buf[:start]
                self._buf = grown
        self._pos = end
        return memoryview(self._buf)[start:end]

    def write(self, data: bytes) -> None:
        with self.room(len(data)) as view:
            view[:] = data

    def finish(self) -> tuple[bytes, Content]:
        view = memoryview(self._buf)[: self._pos]
        return blake3.blake3(view).digest(), view

    def close(self) -> PackBuffer | None:
        data, self._buf, self._pos = self._buf, bytearray(), 0
        return data


class FileSink:
    """The pack in an unnamed temporary file in ``directory`` (None: the system's), written
    through ``stage`` (a blob larger than it gets a buffer of its own)."""

    def __init__(self, directory: str | None, stage: memoryview) -> None:
        self._directory = directory
        try:
            # the file lives as long as the pack, across threads: no with block can hold it
            self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        except OSError as e:
            raise self._error(e) from None
        self._stage = stage
        self._hash = blake3.blake3()
        self._pos = 0

    def __len__(self) -> int:
        return self._pos

    def _error(self, e: OSError) -> SpoolError:
        where = self._directory or tempfile.gettempdir()
        return SpoolError(f"cannot write a temporary pack file in {where}: {e.strerror}")

    @contextmanager
    def room(self, n: int) -> Iterator[memoryview]:
        """Room in the staging buffer, which the packer lends to one pack at a time (the one
        being filled): ``write`` does not use it."""
        view = self._stage[:n] if n <= len(self._stage) else memoryview(bytearray(n))
        yield view
        self.write(view)

    def write(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        fd, done, n = self._file.fileno(), 0, len(data)
        try:
            while done < n:
                done += os.pwrite(fd, data[done:], self._pos + done)
        except OSError as e:
            raise self._error(e) from None
        self._pos += n

    def finish(self) -> tuple[bytes, Content]:
        return self._hash.digest(), SpooledContent(self._file.fileno(), self._pos)

    def close(self) -> PackBuffer | None:
        self._file.close()  # an unnamed file: closing it frees its space
        return None
