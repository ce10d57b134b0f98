"""`cairn mirror push --reconcile` (docs/mirror.md §5): the bucket listed once, against the
committed manifest and the push's plan.

- An object the manifest names whose ETag differs from the one it recorded was changed
  behind the manifest's back, and one that is gone was deleted behind its back: both are
  reported, and the push writes them again.
- An object at the key of a file the plan would upload, of the file's size, may be what an
  interrupted push sent before its state was lost: it is adopted, not sent again, when its
  content provably is the file's. S3 tells that without a download: a single-part object's
  ETag is the MD5 of its bytes, and a multipart one's the MD5 of its parts' MD5s with the part
  count, both computed here from the local file. A local directory's object is read and
  hashed (a local read). Any other object is sent again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import blake3

from cairn.ops.mirror.keys import AREA, NAMES
from cairn.ops.mirror.manifest import Entry
from cairn.ops.mirror.planner import Plan
from cairn.storage.base import Storage
from cairn.storage.objects import Multipart, ObjectHead, ObjectStore

_READ = 1 << 20


@dataclass(slots=True)
class Reconciled:
    listed: int = 0
    changed: list[bytes] = field(default_factory=list)  # ETag differs from the manifest's
    missing: list[bytes] = field(default_factory=list)  # named by the manifest, not stored
    adopted: list[bytes] = field(default_factory=list)  # found stored, not sent again


def listed_objects(objects: ObjectStore) -> dict[str, ObjectHead]:
    """Every object of the mirror's files: outside the mirror's own area, or under names/."""
    return {
        name: head
        for name, head in objects.listing("")
        if not name.startswith(AREA + "/") or name.startswith(NAMES + "/")
    }


def reconcile(
    store: Storage,
    objects: ObjectStore,
    root: bytes,
    committed: dict[bytes, Entry],
    new: dict[bytes, Entry],
    the_plan: Plan,
    key: Callable[[bytes], str],
) -> Reconciled:
    """Adjusts ``the_plan`` (and the etags of ``new``) to what the bucket holds."""
    out = Reconciled()
    listed = listed_objects(objects)
    out.listed = len(listed)
    for path, etag in list(the_plan.unchanged.items()):
        found = listed.get(key(path))
        if found is not None and (not etag or found.etag == etag):
            continue
        (out.missing if found is None else out.changed).append(path)
        del the_plan.unchanged[path]
        new[path].etag = None
        the_plan.upload.append(new[path])
    gone = {*out.changed, *out.missing}
    for entry, src in [*the_plan.copy]:  # a copy of an object changed behind the manifest's
        if src in gone:  # back would spread it: the file goes up itself
            the_plan.copy.remove((entry, src))
            the_plan.upload.append(entry)
    uploads = []
    for entry in the_plan.upload:
        found = listed.get(key(entry.path))
        if (
            entry.path not in out.changed
            and found is not None
            and found.size == entry.size
            and _holds(store, objects.multipart, root, entry, key(entry.path), found)
        ):
            entry.etag = found.etag
            the_plan.unchanged[entry.path] = found.etag
            out.adopted.append(entry.path)
            continue
        uploads.append(entry)
    the_plan.upload = uploads
    return out


def _holds(
    store: Storage,
    multipart: Multipart | None,
    root: bytes,
    entry: Entry,
    name: str,
    found: ObjectHead,
) -> bool:
    """Whether the object ``name`` provably holds ``entry``'s file."""
    etag = found.etag.strip('"')
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag):
        return _md5(os.path.join(root, entry.path), None) == etag
    count = etag.partition("-")[2]
    if multipart is not None and count.isdigit():
        part = multipart.part_size_for(entry.size)
        return _md5(os.path.join(root, entry.path), part) == etag
    if multipart is None:  # a local directory: its objects are local reads
        return _stored_hash(store, name, entry.size) == entry.hash
    return False


def _md5(path: bytes, part: int | None) -> str | None:
    """The S3 ETag of the file's bytes uploaded whole (``part`` None) or in parts of ``part``."""
    try:
        with open(path, "rb") as f:
            if part is None:
                return hashlib.file_digest(f, "md5").hexdigest()
            digests = []
            while chunk := f.read(part):
                digests.append(hashlib.md5(chunk, usedforsecurity=False).digest())
    except OSError:
        return None
    joined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{joined}-{len(digests)}"


def _stored_hash(store: Storage, name: str, size: int) -> bytes | None:
    hasher = blake3.blake3()
    offset = 0
    while offset < size:
        chunk = store.read(name, offset, min(_READ, size - offset))
        if not chunk:
            return None
        hasher.update(chunk)
        offset += len(chunk)
    return hasher.digest()
