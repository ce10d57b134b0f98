"""Opening repositories: the storage wrapper stack, the password, the local cache."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cairn.app.cachedirs import cache_base
from cairn.app.defaults import BackendDefaults, defaults_for
from cairn.app.knownkeys import known_key, remember_key
from cairn.app.passwords import EMPTY, PasswordSource
from cairn.core import clock
from cairn.core.errors import RepositoryError, UsageError, WrongPassword
from cairn.core.urls import OBJECT_STORE, store_kind
from cairn.crypto.kdf import KdfParams
from cairn.ops.objectlock import noncurrent_days
from cairn.repo.config import DEFAULT_PACK_SIZE, is_repo_id
from cairn.repo.journal import PackJournal
from cairn.repo.layout import CONFIG, key_name
from cairn.repo.lockrule import lock_field, lock_rule
from cairn.repo.repository import Repository
from cairn.repo.retentioncache import RetentionCache
from cairn.storage.base import Storage
from cairn.storage.local import LocalStorage
from cairn.storage.metered import MeteredStorage, Usage
from cairn.storage.objectlock import RetentionRule
from cairn.storage.readonly import ReadOnlyStorage
from cairn.storage.retry import RetryingStorage, RetryPolicy
from cairn.storage.s3config import S3Location, S3Options
from cairn.storage.throttle import ThrottledStorage
from cairn.storage.versions import OFF, AsOfStorage

if TYPE_CHECKING:
    from cairn.repo.filescache import FilesCache

__all__ = [
    "ObjectLockRequest",
    "RepoSpec",
    "RetentionRule",
    "S3Options",
    "Session",
    "StoreOptions",
    "open_session",
]

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by cairn.\n"
)


@dataclass(frozen=True)
class StoreOptions:
    s3: S3Options = field(default_factory=S3Options)
    limit_upload: int | None = None  # KiB/s
    limit_download: int | None = None  # KiB/s
    retries: int = 8
    connections: int | None = None  # uploads in flight; None: by backend
    memory_limit: int | None = None  # bytes for buffers (cairn.app.budget); None: the default
    # read the store as it was at this time (time-zone aware), from its object versions:
    # read-only (cairn.storage.versions, docs/point-in-time.md); None: as it is now
    as_of: datetime | None = None
    # every write, delete or change refused before it is sent (--no-lock on the commands
    # that only read: cairn.storage.readonly)
    read_only: bool = False

    def uploads_for(self, url: str) -> int:
        """Packs in flight (each held in memory): --connections, or the backend's default."""
        return self.connections or defaults_for(url).uploads


@dataclass(frozen=True)
class RepoSpec:
    url: str | None
    password: PasswordSource
    cache_dir: str | None = None
    use_cache: bool = True
    store: StoreOptions = field(default_factory=StoreOptions)
    key_hint: str | None = None  # the key file to try first: an id or a unique prefix
    # where a command's notices go (a damaged snapshot object skipped): one line each
    notice: Callable[[str], None] | None = field(default=None, compare=False)

    def resolved_url(self) -> str:
        url = self.url or os.environ.get("CAIRN_REPOSITORY")
        if not url:
            raise UsageError("no repository given: use --repo or CAIRN_REPOSITORY")
        return url

    def resolved_key_hint(self) -> str | None:
        hint = (self.key_hint or os.environ.get("CAIRN_KEY_HINT") or "").strip().lower()
        if hint and not re.fullmatch(r"[0-9a-f]{1,64}", hint):
            raise UsageError(f"key hint {hint!r} is not a key id (hex digits, or a prefix)")
        return hint or None


def backend_for(url: str, options: StoreOptions) -> Storage:
    """The bare backend named by a repository URL."""
    if store_kind(url) == OBJECT_STORE:
        location = S3Location.parse(url)
        s3 = importlib.import_module("cairn.storage.s3")  # boto3 loads only for S3 repositories
        return s3.S3Storage(location, options.s3)  # type: ignore[no-any-return]
    if url.startswith("local:"):
        url = url[len("local:") :]
    if url.startswith(("sftp:", "rest:", "http:", "https:")):
        scheme = url.split(":", 1)[0]
        raise UsageError(f"repository scheme {scheme}: is not supported")
    return LocalStorage(os.path.abspath(url))


@dataclass(frozen=True)
class StackHooks:
    """What every wrapper stack built by ``wrap_backend`` gets besides the standard wrappers,
    while installed with ``stack_hooks``: the seam through which tests inject faults, count
    calls or attach transport handlers in commands they run whole (cairn.storage.faulty).

    - ``wrappers``: applied in order around the bare backend, below the meter (what they
      refuse or count is what reaches the store);
    - ``retry``: the retry policy (its attempts still come from ``StoreOptions.retries``)."""

    wrappers: tuple[Callable[[Storage], Storage], ...] = ()
    retry: RetryPolicy | None = None


_HOOKS: ContextVar[StackHooks | None] = ContextVar("cairn_stack_hooks", default=None)


@contextmanager
def stack_hooks(hooks: StackHooks) -> Iterator[StackHooks]:
    """Every stack built in this block (in this thread) gets ``hooks``."""
    token = _HOOKS.set(hooks)
    try:
        yield hooks
    finally:
        _HOOKS.reset(token)


def wrap_backend(
    backend: Storage, options: StoreOptions, notice: Callable[[str], None] | None = None
) -> tuple[Storage, MeteredStorage]:
    """The one place the wrapper stack is built: retry(throttle(meter(backend))), with
    ``options.read_only`` (--no-lock) the wrapper that refuses every change on top, and with
    ``options.as_of`` the read-only view of the store at that time on top (as_of(retry(...)):
    its listings and reads of versions are retried, throttled and metered as any request).

    Every attempt is metered (each is a request the store bills) and throttled; each retry
    is told to ``notice``. The hooks installed with ``stack_hooks`` (none outside tests) wrap
    the backend first."""
    hooks = _HOOKS.get() or StackHooks()
    listed = getattr(backend, "listed_bytes", None)  # an S3 backend's listing answers
    for wrap in hooks.wrappers:
        backend = wrap(backend)
    meter = MeteredStorage(backend, listed)
    inner: Storage = meter
    if options.limit_upload or options.limit_download:
        inner = ThrottledStorage(
            inner,
            upload=options.limit_upload * 1024 if options.limit_upload else None,
            download=options.limit_download * 1024 if options.limit_download else None,
        )
    policy = replace(hooks.retry or RetryPolicy(), attempts=options.retries)
    if notice is not None:
        policy = replace(policy, notice=notice)
    storage: Storage = RetryingStorage(inner, policy)
    if options.read_only:  # refused before anything is sent, tried again or counted
        storage = ReadOnlyStorage(storage)
    if options.as_of is not None:
        storage = as_of_view(storage, options.as_of)
    return storage, meter


def as_of_view(storage: Storage, when: datetime) -> AsOfStorage:
    """``storage`` as it was at ``when``; a one-line error where it keeps no versions, or for
    a time to come (what the store holds then is not known yet: a view of it would change)."""
    if when > clock.now():
        raise UsageError(
            f"--as-of {when.astimezone().isoformat(timespec='seconds')} is in the future"
        )
    versions = storage.versions
    if versions is None:
        raise UsageError(
            f"--as-of needs a store that keeps object versions (an S3 bucket with "
            f"versioning); {storage.describe()} keeps none"
        )
    if versions.status() == OFF:
        raise UsageError(
            f"--as-of: the bucket of {storage.describe()} has no versioning enabled "
            "(GetBucketVersioning): it keeps no old versions to read"
        )
    return AsOfStorage(storage, versions, when)


class Session:
    """An opened repository with its metered store and local cache directory. ``started``:
    the meter's counts when the session began (a session that opened the repository began
    before opening it, so what its first command records includes the opening)."""

    def __init__(
        self,
        spec: RepoSpec,
        repo: Repository,
        meter: MeteredStorage,
        started: Usage | None = None,
        *,
        key_known: bool = False,
        keys_listed: bool = True,
    ) -> None:
        self.spec = spec
        self.repo = repo
        self.meter = meter
        self.started = started if started is not None else Usage()
        # this host keeps the name of the key file the repository opens with, so an opening
        # without a key hint lists no keys (cairn.app.knownkeys); and whether this one did
        self.key_known = key_known
        self.keys_listed = keys_listed

    @property
    def url(self) -> str:
        return self.spec.resolved_url()

    def opening_lists_keys(self) -> bool:
        """Whether the next opening of the repository from here lists the keys."""
        return bool(self.spec.resolved_key_hint()) or not self.key_known

    def keys_listings_ahead(self) -> int:
        """The keys' listings the next opening from here makes beyond this one's (-1, 0, 1):
        what a dry run adds to the reads it made to count those of the command it rehearses
        (a first opening from a host lists the keys; it keeps the key file for the next)."""
        return int(self.opening_lists_keys()) - int(self.keys_listed)

    def usage(self) -> dict[str, int]:
        """The requests and bytes of this session so far (opening the repository included)."""
        return self.meter.snapshot().minus(self.started).as_dict()

    def reopened(self) -> Session:
        """The same repository, with nothing loaded (no index): a fresh view, for a next step
        after a first one (the same key: no second password prompt or KDF)."""
        old = self.repo
        repo = Repository(old.storage, old.key, old.config)
        repo.key_id, repo.on_notice = old.key_id, old.on_notice
        repo.request_threads = old.request_threads
        repo.object_cache = old.object_cache  # already under ``old.storage``, if any
        return Session(
            self.spec,
            repo,
            self.meter,
            self.meter.snapshot(),
            key_known=self.key_known,
            keys_listed=self.keys_listed,
        )

    @property
    def defaults(self) -> BackendDefaults:
        return defaults_for(self.url)

    @property
    def cache_dir(self) -> Path | None:
        if not self.spec.use_cache:
            return None
        if not is_repo_id(self.repo.config.id):  # checked when the config is read, too
            raise RepositoryError(
                f"the repository id {self.repo.config.id!r} is not a valid cache directory name"
            )
        base = _ready_cache_base(self.spec.cache_dir)
        repo_dir = base / self.repo.config.id
        try:
            repo_dir.mkdir(mode=0o700, exist_ok=True)  # paths and inode numbers: keep private
            os.utime(repo_dir)  # its last use, for `cairn cache --cleanup`
        except OSError as e:
            raise UsageError(f"cannot use cache directory {base}: {e.strerror}") from None
        return repo_dir

    def files_cache(self, read_only: bool = False) -> FilesCache | None:
        from cairn.repo.filescache import FilesCache  # SQLite: a backup's, no other command's

        d = self.cache_dir
        return FilesCache(d / "files.sqlite", read_only=read_only) if d else None

    def journal(self) -> PackJournal | None:
        d = self.cache_dir
        return PackJournal(d / "pending-packs") if d else None

    def retention_cache(self) -> RetentionCache | None:
        """What this host knows of the retain-until dates (repository with an object lock)."""
        d = self.cache_dir
        return RetentionCache(d / "object-lock") if d else None


def _ready_cache_base(explicit: str | None) -> Path:
    """The base of the caches, made (private, tagged) if it was not there."""
    base = cache_base(explicit)
    _make_directory(base, "cache", 0o700)
    tag = base / "CACHEDIR.TAG"
    try:
        if not tag.exists():
            tag.write_text(CACHEDIR_TAG)
    except OSError as e:
        raise UsageError(f"cannot use cache directory {base}: {e.strerror}") from None
    return base


def open_session(spec: RepoSpec) -> Session:
    """Opens the repository (its keys and config; not the index: a use case loads it as a
    step, after reading the snapshots it needs, or under its lock). On an object store the
    requests that do not wait for one another go out at once, now and in the steps to come
    (``BackendDefaults.request_threads``)."""
    url = spec.resolved_url()
    storage, meter = wrap_backend(backend_for(url, spec.store), spec.store, spec.notice)
    password = spec.password.get()
    hint = spec.resolved_key_hint()
    threads = defaults_for(url).request_threads
    # on an object store, the key file this host opened it with is read with the config
    # instead of listing the keys first (cairn.app.knownkeys)
    known = known_key(cache_base(spec.cache_dir), url) if threads and spec.use_cache else None
    try:
        repo = Repository.open(
            storage,
            password,
            key_hint=hint,
            threads=threads,
            known_key=known,
        )
    except WrongPassword as e:
        if password:
            raise
        raise WrongPassword(
            f"{e}: the password is empty (is CAIRN_PASSWORD set but empty?)"
        ) from None
    except RepositoryError:
        if isinstance(storage, AsOfStorage):
            _not_yet(storage, url)
        raise
    opened_with = key_name(repo.key_id)
    # the keys were listed unless the key file known was tried (no hint) and opened it
    listed = bool(hint) or opened_with != known
    key_known = opened_with == known
    if threads and spec.use_cache and not key_known:
        with suppress(UsageError):  # without a cache, the next opening lists the keys
            key_known = remember_key(_ready_cache_base(spec.cache_dir), url, opened_with)
    if spec.notice is not None:
        show = spec.notice
        repo.on_notice = lambda obj, message: show(f"{obj}: {message}")
    _retain_writes(repo)
    session = Session(spec, repo, meter, key_known=key_known, keys_listed=listed)
    _keep_copies(session)
    return session


def _keep_copies(session: Session) -> None:
    """On an object store, the index objects, snapshots and tree packs are kept in the cache
    directory and read from there (cairn.repo.objectcache); not for a past time (``--as-of``
    reads other versions), nor without a cache directory (``--no-cache``, or one that cannot be
    made: then the store is read, as without)."""
    if not session.defaults.object_cache or session.spec.store.as_of is not None:
        return
    try:
        directory = session.cache_dir
    except UsageError as e:
        session.repo.notice("cache", f"{e}; reading everything from the store")
        return
    if directory is not None:
        session.repo.attach_cache(directory / "objects")


def _not_yet(view: AsOfStorage, url: str) -> None:
    """Raises the error for a repository that did not exist yet at the view's time (if its
    config object was written later); returns otherwise."""
    if view.version_of(CONFIG) is not None:
        return
    when = view.time.isoformat(timespec="seconds")
    first = view.first_written(CONFIG)
    if first is None:
        return  # never was a repository: the error as without --as-of
    raise RepositoryError(
        f"{url} held no repository as of {when}: it was created at "
        f"{first.astimezone().isoformat(timespec='seconds')}"
    )


def _retain_writes(repo: Repository) -> None:
    """On a repository with an object lock, every object written from now on carries its
    retention. A copy on a store that cannot lock (a mirror pulled to a directory) opens,
    unlocked, with a notice."""
    rule = lock_rule(repo.config)
    if rule is None or isinstance(repo.storage, AsOfStorage):  # a past time is only read
        return
    lock = repo.storage.object_lock
    if lock is None:
        repo.notice(
            repo.storage.describe(), "the repository has an object lock this store cannot keep"
        )
        return
    lock.retain_writes(rule)


@dataclass(frozen=True)
class ObjectLockRequest:
    """``init --object-lock``: every object locked ``rule.days`` days from its writing; with
    ``lifecycle``, a bucket cairn creates gets the rule that expires noncurrent versions
    (docs/objectlock.md)."""

    rule: RetentionRule
    lifecycle: bool = True


def create_repository(
    spec: RepoSpec,
    pack_size: int = DEFAULT_PACK_SIZE,
    kdf: KdfParams | None = None,
    like: Repository | None = None,
    object_lock: ObjectLockRequest | None = None,
) -> Repository:
    """A new repository at ``spec``; ``like``: an open repository whose chunker parameters
    and id key it shares (``init --copy-chunker-params``); ``object_lock``: every object it
    stores locked (``init --object-lock``)."""
    backend = backend_for(spec.resolved_url(), spec.store)
    if object_lock is not None and backend.object_lock is None:
        raise UsageError(
            f"{backend.describe()} cannot lock objects: --object-lock needs an S3 repository"
        )
    password = spec.password.get(confirm=True)  # before anything is created
    if not password:
        raise UsageError(EMPTY)
    created = False
    if isinstance(backend, LocalStorage):
        _make_directory(backend.root, "repository")
    elif hasattr(backend, "create_bucket"):
        created = backend.create_bucket(object_lock=object_lock is not None)
    storage, _ = wrap_backend(backend, spec.store, spec.notice)
    extra: dict[str, object] = {}
    if object_lock is not None:
        extra = _lock_bucket(storage, object_lock, created)
    return Repository.create(
        storage, password, pack_size=pack_size, kdf=kdf, like=like, extra=extra
    )


def _lock_bucket(storage: Storage, request: ObjectLockRequest, created: bool) -> dict[str, object]:
    """Readies the store for a repository with an object lock: the bucket has Object Lock
    (refused, with nothing created, if not), a bucket cairn created gets its default retention
    and lifecycle rule, and every write from now on is locked. The config's fields."""
    lock = storage.object_lock
    assert lock is not None
    bucket = storage.describe()
    if not created and not lock.bucket_locked():
        raise UsageError(
            f"{bucket}: the bucket has no Object Lock; enable it on the bucket (with "
            "versioning) or give a new bucket, which init creates with it"
        )
    rule = request.rule
    if created:
        lock.configure_bucket(rule, noncurrent_days(rule) if request.lifecycle else None)
    lock.retain_writes(rule)
    return lock_field(rule)


def _make_directory(path: Path, what: str, mode: int = 0o777) -> None:
    """``path`` as a directory (with its parents), or a one-line error saying why not."""
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{what} directory {path} exists and is not a directory") from None
    except OSError as e:
        raise UsageError(f"cannot create {what} directory {path}: {e.strerror}") from None
