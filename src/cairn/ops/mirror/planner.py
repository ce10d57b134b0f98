"""What a push must do to the store (docs/mirror.md §5), from the committed manifest and the
scanned source: which files go up, which are server-side copies of an object the store holds
already (a rename, a duplicate), and which objects lose their file. A change of metadata alone
asks for nothing but the manifest. Pure: no I/O.

The store runs the plan in phases: ``copy`` (from objects of the committed manifest), then
``upload``, then ``copy_after`` (duplicates of a file uploaded in this push), then, with
``--delete``, ``remove``. A copy never reads a key this push writes, so no phase sees another's
half-done work: a file whose content sits only at such a key goes up instead."""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.model.node import FILE
from cairn.ops.mirror.manifest import Entry


@dataclass(slots=True)
class Plan:
    upload: list[Entry] = field(default_factory=list)
    copy: list[tuple[Entry, bytes]] = field(default_factory=list)  # (entry, source path)
    copy_after: list[tuple[Entry, bytes]] = field(default_factory=list)
    remove: list[Entry] = field(default_factory=list)
    # files whose object stays as it is: the manifest entry's etag carried over
    unchanged: dict[bytes, str] = field(default_factory=dict)

    @property
    def bytes_up(self) -> int:
        return sum(e.size for e in self.upload)


def plan(old: dict[bytes, Entry], new: dict[bytes, Entry]) -> Plan:
    """``old``: the committed manifest; ``new``: the source's entries, files hashed."""
    out = Plan()
    written: set[bytes] = set()  # paths whose object this push writes
    needed: list[Entry] = []
    for path, entry in new.items():
        if entry.type != FILE:
            continue
        before = old.get(path)
        if before is not None and before.type == FILE and before.hash == entry.hash:
            out.unchanged[path] = before.etag or ""
        else:
            needed.append(entry)
            written.add(path)
    sources: dict[bytes, bytes] = {}  # hash -> path of a committed object that keeps it
    for path, entry in old.items():
        if entry.type == FILE and entry.hash is not None and path not in written:
            sources.setdefault(entry.hash, path)
    first_upload: dict[bytes, bytes] = {}
    for entry in sorted(needed, key=lambda e: e.path):
        assert entry.hash is not None
        if (source := sources.get(entry.hash)) is not None:
            out.copy.append((entry, source))
        elif (source := first_upload.get(entry.hash)) is not None:
            out.copy_after.append((entry, source))
        else:
            first_upload[entry.hash] = entry.path
            out.upload.append(entry)
    for path, entry in old.items():
        if entry.type == FILE and (path not in new or new[path].type != FILE):
            out.remove.append(entry)
    return out
