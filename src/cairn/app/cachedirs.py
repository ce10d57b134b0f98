"""The local caches of this machine: one directory per repository (its files cache and pack
journal) under one base directory; how big each is, when it was last used, and the removal of
those not used for a while (``cairn cache``)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from cairn.core.errors import UsageError
from cairn.repo.config import is_repo_id


def cache_base(explicit: str | None = None) -> Path:
    """Where the caches live: ``--cache-dir``, else $CAIRN_CACHE_DIR, else the platform's
    cache directory (``~/.cache/cairn`` on Linux)."""
    return Path(
        explicit or os.environ.get("CAIRN_CACHE_DIR") or platformdirs.user_cache_dir("cairn")
    )


@dataclass(frozen=True)
class RepoCache:
    repository: str  # the repository id
    path: Path
    size: int  # bytes
    last_used: float  # POSIX time: the newest change of the directory or a file in it

    def unused_for(self, now: float) -> float:
        return now - self.last_used

    def to_json(self) -> dict[str, object]:
        return {
            "repository": self.repository,
            "path": str(self.path),
            "size": self.size,
            "last_used": self.last_used,
        }


def _measure(path: Path) -> tuple[int, float]:
    size, newest = 0, path.stat().st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:  # removed while walked (a backup finishing)
                continue
            newest = max(newest, st.st_mtime)
            if name in files:
                size += st.st_size
    return size, newest


def list_caches(base: Path) -> list[RepoCache]:
    """The repositories' cache directories under ``base``, oldest use first; anything else
    there (the CACHEDIR.TAG) is left out."""
    try:
        entries = list(base.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise UsageError(f"cannot read cache directory {base}: {e.strerror}") from None
    caches = []
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink() and is_repo_id(entry.name):
            size, last_used = _measure(entry)
            caches.append(RepoCache(entry.name, entry, size, last_used))
    return sorted(caches, key=lambda c: (c.last_used, c.repository))


def remove_cache(cache: RepoCache) -> None:
    try:
        shutil.rmtree(cache.path)
    except OSError as e:
        raise UsageError(f"cannot remove cache {cache.path}: {e.strerror}") from None
