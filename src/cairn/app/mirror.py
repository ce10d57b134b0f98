"""The mirror use cases (docs/mirror.md): init, push, pull, status and verify of a directory
kept in a bucket file for file. Opens the store through the same wrapper stack as
repositories (retries, bandwidth caps, request counts), keeps the push state in cairn's cache
directory, and prices a planned push at the tables `cairn cost` uses."""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from cairn.app.cachedirs import cache_base
from cairn.app.context import StoreOptions, backend_for, wrap_backend
from cairn.app.passwords import PasswordSource
from cairn.app.pricing import priced, pricing
from cairn.core import clock
from cairn.core.errors import RepositoryError, UsageError
from cairn.core.urls import OBJECT_STORE, store_kind
from cairn.ops.cost.bill import request_cost, storage_month
from cairn.ops.filter_patterns import PatternList
from cairn.ops.mirror.crypt import MirrorCipher
from cairn.ops.mirror.piececache import CachedPieces
from cairn.ops.mirror.pull import PullResult, pull
from cairn.ops.mirror.push import PushOptions, PushResult, push
from cairn.ops.mirror.reader import MARKER, Marker, open_mirror
from cairn.ops.mirror.state import MirrorState
from cairn.ops.mirror.verify import VerifyResult, verify
from cairn.storage.base import Storage
from cairn.storage.http import HttpStorage
from cairn.storage.local import LocalStorage
from cairn.storage.metered import MeteredStorage
from cairn.storage.objects import Multipart, ObjectStore
from cairn.storage.s3config import S3Location

__all__ = [
    "MirrorSpec",
    "PullOutcome",
    "PullRequest",
    "PullResult",
    "PushOutcome",
    "PushRequest",
    "PushResult",
    "init",
    "pull_mirror",
    "push_mirror",
    "status",
    "verify_mirror",
]


@dataclass(frozen=True)
class MirrorSpec:
    url: str
    store: StoreOptions = field(default_factory=StoreOptions)
    cache_dir: str | None = None
    use_cache: bool = True
    # asked for only by an encrypted mirror (docs/mirror.md §8.1), as a repository's
    password: PasswordSource = field(default_factory=PasswordSource)


@dataclass
class Opened:
    store: Storage
    objects: ObjectStore
    meter: MeteredStorage
    local_root: Path | None


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def open_store(spec: MirrorSpec) -> Opened:
    """The store a mirror URL names, wrapped as a repository's store is."""
    if is_http(spec.url):
        raise UsageError(f"{spec.url}: a mirror over plain HTTP can only be pulled from")
    backend = backend_for(spec.url, spec.store)
    store, meter = wrap_backend(backend, spec.store)
    objects = store.objects
    if objects is None:  # pragma: no cover - every backend has it
        raise UsageError(f"{spec.url}: this store cannot hold a mirror")
    root = backend.root if isinstance(backend, LocalStorage) else None
    return Opened(store, objects, meter, root)


def open_source(spec: MirrorSpec) -> tuple[Storage, MeteredStorage]:
    """The store a pull reads: any mirror URL, or a plain http(s):// base URL (GETs only)."""
    if is_http(spec.url):
        backend: Storage = HttpStorage(spec.url.rstrip("/"))
    else:
        backend = backend_for(spec.url, spec.store)
    return wrap_backend(backend, spec.store)


def prefix_bytes(url: str) -> int:
    """The length of the bucket prefix of a mirror URL, without its trailing '/' (§2)."""
    if store_kind(url) != OBJECT_STORE:
        return 0
    return len(S3Location.parse(url).prefix.rstrip("/").encode())


def init(spec: MirrorSpec, encrypt: bool = False) -> tuple[Marker, dict[str, int]]:
    """Makes ``spec.url`` an empty mirror: its marker, created only if there is none.
    ``encrypt``: an encrypted mirror (§8) under a new password from ``spec.password``."""
    encryption: dict[str, object] | None = None
    if encrypt:  # asked before anything is made, and confirmed at a prompt
        _cipher, encryption = MirrorCipher.create(spec.password.get(confirm=True))
    backend = backend_for(spec.url, spec.store)
    if isinstance(backend, LocalStorage):
        try:
            backend.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create directory {backend.root}: {e.strerror}") from None
    elif hasattr(backend, "create_bucket"):
        backend.create_bucket()
    opened = open_store(spec)
    created = clock.now().isoformat(timespec="seconds")
    marker = Marker(secrets.token_hex(16), created, encryption)
    doc = {
        "format": "cairn-mirror",
        "version": 1,
        "id": marker.id,
        "created": marker.created,
        "encryption": encryption,
        "prefix-bytes": prefix_bytes(spec.url),
    }
    data = json.dumps(doc, sort_keys=True).encode()
    if not opened.objects.create(MARKER, data):
        raise RepositoryError(f"{opened.store.describe()} is a mirror already")
    return marker, opened.meter.snapshot().as_dict()


def state_path(spec: MirrorSpec, marker: Marker, source: bytes) -> Path:
    if not marker.id.isalnum():
        raise UsageError(f"the mirror id {marker.id!r} is not a valid cache directory name")
    digest = blake3.blake3(os.path.abspath(source)).hexdigest()
    return cache_base(spec.cache_dir) / "mirror" / marker.id / f"{digest}.sqlite"


@dataclass
class PushRequest:
    source: str
    workers: int = 4
    checksum: bool = False
    delete: bool = False
    keep_deleted_days: int | None = None
    dry_run: bool = False
    host: str | None = None
    checkpoint_bytes: int = 4 << 30
    checkpoint_seconds: float = 300.0
    reconcile: bool = False


@dataclass
class PushOutcome:
    result: PushResult
    usage: dict[str, int]
    estimate: dict[str, Any] | None = None


def push_mirror(spec: MirrorSpec, request: PushRequest) -> PushOutcome:
    root = os.fsencode(os.path.abspath(request.source))
    if not os.path.isdir(root):
        raise UsageError(f"{request.source}: not a directory")
    opened = open_store(spec)
    if opened.local_root is not None and _inside(root, opened.local_root):
        raise UsageError(f"{spec.url} lies inside the directory it would mirror")
    marker, codec = open_mirror(opened.store, spec.password.get)
    path = state_path(spec, marker, root) if spec.use_cache else None
    if path is not None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot use cache directory {path.parent}: {e.strerror}") from None
    with MirrorState(path or Path(":memory:")) as state:
        pieces = CachedPieces(opened.store, path.with_suffix(".pieces") if path else None)
        opts = PushOptions(
            host=request.host or socket.gethostname(),
            created=lambda: clock.now().isoformat(timespec="seconds"),
            workers=request.workers,
            connections=spec.store.connections or (8 if opened.local_root is None else 4),
            checksum=request.checksum,
            delete=request.delete,
            keep_deleted_days=request.keep_deleted_days,
            cold=bool(spec.store.s3.storage_class),
            prefix_len=marker.prefix_bytes,
            checkpoint_bytes=request.checkpoint_bytes,
            checkpoint_seconds=request.checkpoint_seconds,
            dry_run=request.dry_run,
            reconcile=request.reconcile,
            codec=codec,
        )
        result = push(opened.store, opened.objects, root, state, pieces, opts)
    usage = opened.meter.snapshot().as_dict()
    estimate = _estimate(spec, request, result) if request.dry_run else None
    return PushOutcome(result, usage, estimate)


def _inside(root: bytes, store_root: Path) -> bool:
    store = os.fsencode(os.path.realpath(store_root))
    real = os.path.realpath(root)
    return store == real or store.startswith(real.rstrip(b"/") + b"/")


def planned_requests(
    result: PushResult, delete: bool, trash: bool, parts: Multipart | None
) -> dict[str, int]:
    """The requests the push a dry run planned would make (its reading already made);
    ``parts``: how the store uploads large files (None: whole)."""
    p = result.plan
    if p is None:
        return {}
    parts = sum(
        len(parts.ranges(e.size)) + 2 if parts and e.size >= parts.threshold else 1
        for e in p.upload
    )
    copies = len(p.copy) + len(p.copy_after)
    changed = bool(p.upload or p.copy or p.copy_after or p.remove or result.metadata_only)
    removes = len(p.remove) if (delete or trash) else 0
    return {
        "put": parts + copies + (3 if changed else 0) + (removes if trash else 0),
        "get": 0,
        "head": 0,
        "list": 0,
        "delete": removes,
        "bytes_up": p.bytes_up,
    }


def _estimate(spec: MirrorSpec, request: PushRequest, result: PushResult) -> dict[str, Any]:
    assert result.plan is not None
    parts = None
    if store_kind(spec.url) == OBJECT_STORE:
        s3 = spec.store.s3
        parts = Multipart(s3.multipart_threshold, s3.multipart_chunksize)
    trash = request.keep_deleted_days is not None
    counts = planned_requests(result, request.delete, trash, parts)
    out: dict[str, Any] = {"requests": counts, "bytes_up": result.plan.bytes_up}
    if not priced(spec.url):
        return {**out, "local": True}
    provider, why = pricing(spec.url)
    cls = provider.cls(spec.store.s3.storage_class)
    out["cost"] = request_cost(counts, cls)
    out["month"] = storage_month(result.bytes, cls) if result.bytes else 0.0
    out["provider"] = provider.key
    out["prices"] = f"{provider.name}, list prices of {provider.taken} ({why})"
    return out


@dataclass
class VerifyOutcome:
    result: VerifyResult
    usage: dict[str, int]


def verify_mirror(spec: MirrorSpec, read_data: bool, workers: int = 8) -> VerifyOutcome:
    opened = open_store(spec)
    marker, codec = open_mirror(opened.store, spec.password.get)
    result = verify(
        opened.store,
        opened.objects,
        prefix_len=marker.prefix_bytes,
        read_data=read_data,
        workers=workers,
        codec=codec,
    )
    return VerifyOutcome(result, opened.meter.snapshot().as_dict())


@dataclass
class PullRequest:
    dest: str
    delete: bool = False
    include: list[str] = field(default_factory=list)
    checksum: bool = False
    workers: int = 8


@dataclass
class PullOutcome:
    result: PullResult
    usage: dict[str, int]


def pull_mirror(spec: MirrorSpec, request: PullRequest) -> PullOutcome:
    """Makes the directory ``request.dest`` equal to the mirror's newest generation."""
    include = PatternList(request.include)
    store, meter = open_source(spec)
    dest = os.fsencode(os.path.abspath(request.dest))
    result = pull(
        store,
        dest,
        delete=request.delete,
        include=include,
        checksum=request.checksum,
        workers=request.workers,
        password=spec.password.get,
    )
    return PullOutcome(result, meter.snapshot().as_dict())


def status(spec: MirrorSpec, request: PushRequest) -> PushOutcome:
    """What a push would do, with its requests and their cost: a dry run."""
    request.dry_run = True
    return push_mirror(spec, request)
