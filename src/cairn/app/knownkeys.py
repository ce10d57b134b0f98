"""The key file this machine last opened each repository with, by the repository's location:
``<cache base>/known-keys/<blake3 of the URL>`` holds ``keys/<id>``.

Opening an object-store repository reads that key file with the config and skips the listing
of the keys, a round trip (``Repository.open``'s ``known_key``). The name alone is kept: the key
file is read from the repository each time, and a name that is gone, damaged or does not open
with the password only brings the listing back. The location, not the repository id, is the
index: the id is in the config, which is being read at the same time. Nothing here is secret
(key file names are public in the bucket); what cannot be read or written is ignored, since
only a round trip depends on it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import blake3

from cairn.repo.layout import is_key_name

DIRECTORY = "known-keys"


def _path(base: Path, url: str) -> Path:
    return base / DIRECTORY / blake3.blake3(url.encode()).hexdigest()


def known_key(base: Path, url: str) -> str | None:
    """The key file name last opened at ``url`` (None if none is kept, or what is kept is not
    a key file's name)."""
    try:
        name = _path(base, url).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if is_key_name(name) else None


def remember_key(base: Path, url: str, name: str) -> bool:
    """Keeps ``name`` for ``url`` (written whole or not at all) under ``base``, the cache
    directory, which is there already; whether it could."""
    path = _path(base, url)
    tmp: str | None = None
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        # a name of its own: processes and the web server's threads may keep one at once
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(name + "\n")
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
    return True
