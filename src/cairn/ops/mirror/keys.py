"""The object key of a mirrored path (docs/mirror.md §3) and the Content-Type of its object."""

from __future__ import annotations

import mimetypes

import blake3

AREA = ".cairn-mirror"
NAMES = f"{AREA}/names"
MAX_KEY = 1024  # S3's limit on a key, in bytes
_LOCAL_TMP = b".tmp-"  # the local-directory store hides its unfinished writes by this prefix
_CONTROL = frozenset(range(0x20)) | {0x7F}
_COMPRESSED = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "br": "application/x-brotli",
    "compress": "application/x-compress",
}


class BadPath(ValueError):
    """A path that no entry may have (empty, absolute, or with '.', '..' or empty parts)."""


def check_path(path: bytes) -> None:
    if not path or path.startswith(b"/") or path.endswith(b"/"):
        raise BadPath(f"not a relative path: {path!r}")
    for part in path.split(b"/"):
        if part in (b"", b".", b".."):
            raise BadPath(f"a path with an empty, '.' or '..' component: {path!r}")


def has_own_key(path: bytes, prefix_len: int = 0) -> bool:
    """Whether ``path`` is stored under its own name (otherwise under ``names/``)."""
    try:
        path.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if not _CONTROL.isdisjoint(path):
        return False
    parts = path.split(b"/")
    if parts[0] == AREA.encode() or any(p.startswith(_LOCAL_TMP) for p in parts):
        return False
    return prefix_len + 1 + len(path) <= MAX_KEY


def object_key(path: bytes, prefix_len: int = 0) -> str:
    """The key of ``path``'s object below the mirror's root; ``prefix_len`` is the length in
    bytes of the bucket prefix the mirror lives under (0 without one)."""
    check_path(path)
    if has_own_key(path, prefix_len):
        return path.decode("utf-8")
    digest = blake3.blake3(path).hexdigest()
    return f"{NAMES}/{digest[:2]}/{digest}"


def content_type(path: bytes) -> str:
    """The Content-Type of a file's object, from its name's extension."""
    name = path.rsplit(b"/", 1)[-1].decode("utf-8", "surrogateescape")
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding:  # x.tar.gz is gzip bytes: a Content-Encoding would make browsers unpack it
        return _COMPRESSED.get(encoding, "application/octet-stream")
    return guessed or "application/octet-stream"
