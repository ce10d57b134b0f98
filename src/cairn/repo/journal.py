"""A local journal of uploaded packs that no index object lists yet.

The journal file is a sequence of msgpack byte strings, each holding one encoded index object
(see repo/index.py) for one pack, appended and fsynced as soon as the pack is stored. If a
backup is interrupted, the next one on this machine indexes those packs (after checking they
exist) and so reuses them instead of uploading them again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgpack

from cairn.repo.index import PackColumns, PackRecord, decode_index, encode_index


class PackJournal:
    """The journal of one cache directory. It remembers the entries it wrote itself, so that
    taking indexed packs out rewrites the file from those entries once the file is found to
    hold exactly them (a comparison of bytes), rather than decoding every entry and encoding
    the rest again (a first backup of a million files journals a million blobs). A file that
    holds anything else (another process's entries, an earlier run's) is decoded as before."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # pack id -> its entry, in the order written: what this journal last wrote or appended
        self._entries: dict[bytes, bytes] = {}

    def append(self, record: PackRecord | PackColumns) -> None:
        entry = msgpack.packb(encode_index([record]))
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, entry)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._entries[record.info.id] = entry

    def records(self) -> Iterator[PackRecord]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        yield from _decode(data)

    def forget(self, records: Iterable[PackRecord | PackColumns]) -> None:
        done = {r.info.id for r in records}
        with self._lock:
            try:
                held = self.path.read_bytes()
            except FileNotFoundError:
                held = b""
            if held == b"".join(self._entries.values()):
                keep = {i: e for i, e in self._entries.items() if i not in done}
            else:
                keep = {
                    r.info.id: msgpack.packb(encode_index([r]))
                    for r in _decode(held)
                    if r.info.id not in done
                }
            self._entries = keep
            if not keep:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"".join(keep.values()))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)

    def clear(self) -> None:
        with self._lock:
            self.path.unlink(missing_ok=True)
            self._entries = {}


def _decode(data: bytes) -> Iterator[PackRecord]:
    """The records of a journal's bytes."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    try:
        for blob in unpacker:
            yield from decode_index(blob)
    except (ValueError, msgpack.UnpackException):
        return  # a torn last entry from a crash mid-append: the rest is usable
