"""Opening repositories: the storage wrapper stack, the password, the local cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from cairn.app.passwords import PasswordSource
from cairn.core.errors import UsageError
from cairn.crypto.kdf import KdfParams
from cairn.repo.config import DEFAULT_PACK_SIZE
from cairn.repo.filescache import FilesCache
from cairn.repo.journal import PackJournal
from cairn.repo.repository import Repository
from cairn.storage.base import Storage
from cairn.storage.local import LocalStorage
from cairn.storage.metered import MeteredStorage

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by cairn.\n"
)


@dataclass(frozen=True)
class RepoSpec:
    url: str | None
    password: PasswordSource
    cache_dir: str | None = None
    use_cache: bool = True

    def resolved_url(self) -> str:
        url = self.url or os.environ.get("CAIRN_REPOSITORY")
        if not url:
            raise UsageError("no repository given: use --repo or CAIRN_REPOSITORY")
        return url


def open_storage(url: str) -> Storage:
    if url.startswith("local:"):
        url = url[len("local:") :]
    if url.startswith(("s3:", "sftp:", "rest:", "http:", "https:")):
        scheme = url.split(":", 1)[0]
        raise UsageError(f"repository scheme {scheme}: is not supported by this build")
    return LocalStorage(os.path.abspath(url))


class Session:
    """An opened repository with its metered store and local cache directory."""

    def __init__(self, spec: RepoSpec, repo: Repository, meter: MeteredStorage) -> None:
        self.spec = spec
        self.repo = repo
        self.meter = meter

    @property
    def cache_dir(self) -> Path | None:
        if not self.spec.use_cache:
            return None
        base = Path(
            self.spec.cache_dir
            or os.environ.get("CAIRN_CACHE_DIR")
            or platformdirs.user_cache_dir("cairn")
        )
        base.mkdir(parents=True, exist_ok=True)
        tag = base / "CACHEDIR.TAG"
        if not tag.exists():
            tag.write_text(CACHEDIR_TAG)
        return base / self.repo.config.id

    def files_cache(self, read_only: bool = False) -> FilesCache | None:
        d = self.cache_dir
        return FilesCache(d / "files.sqlite", read_only=read_only) if d else None

    def journal(self) -> PackJournal | None:
        d = self.cache_dir
        return PackJournal(d / "pending-packs") if d else None


def open_session(spec: RepoSpec, load_index: bool = True) -> Session:
    meter = MeteredStorage(open_storage(spec.resolved_url()))
    repo = Repository.open(meter, spec.password.get())
    if load_index:
        repo.load_index()
    return Session(spec, repo, meter)


def create_repository(
    spec: RepoSpec, pack_size: int = DEFAULT_PACK_SIZE, kdf: KdfParams | None = None
) -> Repository:
    storage = open_storage(spec.resolved_url())
    if isinstance(storage, LocalStorage):
        storage.root.mkdir(parents=True, exist_ok=True)
    password = spec.password.get(confirm=True)
    return Repository.create(storage, password, pack_size=pack_size, kdf=kdf)
