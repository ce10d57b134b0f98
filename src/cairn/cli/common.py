"""Options shared by commands, and the objects they build."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import click
from click.core import ParameterSource

from cairn.app import repositories
from cairn.app.context import RepoSpec, S3Options, StoreOptions
from cairn.app.defaults import help_text
from cairn.app.passwords import PasswordSource
from cairn.app.snapshots import SnapshotFilter
from cairn.cli.helpformat import output_option, repository_option
from cairn.core import clock
from cairn.core.errors import UsageError
from cairn.core.units import parse_size, parse_time
from cairn.ui.output import Output

_PASSWORD_FLAGS = [
    repository_option("--password-file", metavar="FILE", help="Read the password from FILE."),
    repository_option("--password-command", metavar="CMD", help="Run CMD and use its output."),
]


def _password_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """--password-file and --password-command (then $CAIRN_PASSWORD, $CAIRN_PASSWORD_FILE, a
    prompt: app.passwords), shared by repositories and encrypted mirrors."""
    for option in reversed(_PASSWORD_FLAGS):
        f = option(f)
    return f


def password_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The password sources, turned into ``password`` (a PasswordSource, read only when the
    command needs it)."""

    @_password_flags
    @functools.wraps(f)
    def wrapper(password_file: str | None, password_command: str | None, **kwargs: Any) -> Any:
        return f(password=PasswordSource(file=password_file, command=password_command), **kwargs)

    return wrapper


def repo_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--repo, password sources, cache and output options, turned into ``spec`` and ``out``."""

    @repository_option(
        "-r",
        "--repo",
        "repo",
        metavar="URL",
        help="Repository (or $CAIRN_REPOSITORY); @NAME: [repositories.NAME] of the config file.",
    )
    @repository_option(
        "--config",
        "config_path",
        envvar="CAIRN_CONFIG",
        metavar="FILE",
        help="Configuration file naming repositories (default ~/.config/cairn/config.toml).",
    )
    @_password_flags
    @repository_option(
        "--key-hint",
        metavar="ID",
        help="Try this key (an id or a unique prefix) first (or $CAIRN_KEY_HINT).",
    )
    @repository_option("--cache-dir", metavar="DIR", help="Local cache directory.")
    @repository_option("--no-cache", is_flag=True, help="Use no local cache.")
    @_store_option_flags
    @output_option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
    @output_option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
    @functools.wraps(f)
    def wrapper(
        repo: str | None,
        config_path: str | None,
        password_file: str | None,
        password_command: str | None,
        key_hint: str | None,
        cache_dir: str | None,
        no_cache: bool,
        json_mode: bool,
        quiet: bool,
        **kwargs: Any,
    ) -> Any:
        store = store_from_flags(**{k: kwargs.pop(k) for k in STORE_FLAGS})
        output = Output(json_mode=json_mode, quiet=quiet)
        spec = RepoSpec(
            url=repo,
            password=PasswordSource(file=password_file, command=password_command),
            cache_dir=cache_dir,
            use_cache=not no_cache,
            key_hint=key_hint,
            store=store,
            notice=output.warning,
        )
        spec = _named(spec, config_path)
        return f(spec=spec, out=output, **kwargs)

    return wrapper


def no_lock_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--no-lock for the commands that only read (below ``repo_options``): they take no lock
    and write nothing; with it the store is opened read-only, so a write is refused
    (cairn.storage.readonly), as restic's users expect of the flag."""

    @repository_option(
        "--no-lock",
        is_flag=True,
        help="Open the repository read-only: this command takes no lock and writes nothing; "
        "with --no-lock any write would be refused.",
    )
    @functools.wraps(f)
    def wrapper(spec: RepoSpec, no_lock: bool, **kwargs: Any) -> Any:
        if no_lock:
            spec = replace(spec, store=replace(spec.store, read_only=True))
        return f(spec=spec, **kwargs)

    return wrapper


def reading_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of the commands that only read (below ``repo_options``), put in ``spec``:
    --no-lock, and --as-of TIME, the repository as it was at TIME, read from the object
    versions of its bucket."""
    return _as_of(no_lock_option(f), repository_option, "Read the repository as it was at TIME")


def as_of_required(f: Callable[..., Any]) -> Callable[..., Any]:
    """--as-of TIME as a required option of the command itself (repair undelete)."""
    return _as_of(f, functools.partial(click.option, required=True), "The time to go back to")


def _as_of(f: Callable[..., Any], option: Callable[..., Any], what: str) -> Callable[..., Any]:
    @option(
        "--as-of",
        "as_of",
        metavar="TIME",
        callback=lambda _ctx, _param, v: None if v is None else _time(v, "--as-of"),
        help=(
            f"{what}, from the object versions of a versioned S3 bucket: 2026-11-22, "
            "'2026-11-22 14:30' (local time), ISO 8601 with an offset, or an age (12h, 3d)."
        ),
    )
    @functools.wraps(f)
    def wrapper(spec: RepoSpec, as_of: datetime | None, **kwargs: Any) -> Any:
        if as_of is not None:
            spec = replace(spec, store=replace(spec.store, as_of=as_of))
        return f(spec=spec, **kwargs)

    return wrapper


def _time(text: str, option: str) -> datetime:
    try:
        return parse_time(text, clock.now())
    except UsageError as e:
        raise click.BadParameter(str(e), param_hint=option) from None


def _store_option_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of the store's connection (storage class, S3 addressing, bandwidth,
    retries, memory), shared by repositories and mirrors."""
    for option in reversed(_STORE_FLAGS):
        f = option(f)
    return f


_STORE_FLAGS = [
    repository_option(
        "--storage-class",
        envvar="CAIRN_STORAGE_CLASS",
        metavar="CLASS",
        help="S3 storage class for data packs (STANDARD_IA, GLACIER_IR, ...).",
    ),
    repository_option(
        "--s3-path-style",
        is_flag=True,
        envvar="CAIRN_S3_PATH_STYLE",
        help="Path-style S3 addressing (most S3-compatible stores).",
    ),
    repository_option(
        "--s3-anonymous",
        is_flag=True,
        envvar="CAIRN_S3_ANONYMOUS",
        help="Unsigned S3 requests, no credentials (a bucket that allows anonymous reads).",
    ),
    repository_option(
        "--s3-sse",
        envvar="CAIRN_S3_SSE",
        type=click.Choice(["AES256", "aws:kms"]),
        help="Ask the store to encrypt objects at rest too.",
    ),
    repository_option("--s3-sse-kms-key-id", envvar="CAIRN_S3_SSE_KMS_KEY_ID", metavar="ID"),
    repository_option(
        "--connections",
        envvar="CAIRN_CONNECTIONS",
        type=click.IntRange(1, 64),
        help=f"Uploads in flight ({help_text('uploads')}).",
    ),
    repository_option(
        "--limit-upload",
        envvar="CAIRN_LIMIT_UPLOAD",
        type=click.IntRange(1),
        metavar="KiB/s",
        help="Cap upload bandwidth.",
    ),
    repository_option(
        "--limit-download",
        envvar="CAIRN_LIMIT_DOWNLOAD",
        type=click.IntRange(1),
        metavar="KiB/s",
        help="Cap download bandwidth.",
    ),
    repository_option(
        "--retries",
        envvar="CAIRN_RETRIES",
        type=click.IntRange(1, 100),
        default=8,
        show_default=True,
        help="Attempts per store request (backoff with jitter).",
    ),
    repository_option(
        "--memory-limit",
        envvar="CAIRN_MEMORY_LIMIT",
        metavar="SIZE",
        callback=lambda _ctx, _param, v: None if v is None else _size(v, "--memory-limit"),
        help=(
            "Memory for buffers, uploads in flight and caches (default 256M); packs that do "
            "not fit are built in temporary files ($TMPDIR)."
        ),
    ),
]


def store_from_flags(
    storage_class: str | None,
    s3_path_style: bool,
    s3_anonymous: bool,
    s3_sse: str | None,
    s3_sse_kms_key_id: str | None,
    connections: int | None,
    limit_upload: int | None,
    limit_download: int | None,
    retries: int,
    memory_limit: int | None,
) -> StoreOptions:
    s3 = S3Options(
        storage_class=storage_class.upper() if storage_class else None,
        path_style=s3_path_style,
        anonymous=s3_anonymous,
        sse=s3_sse,
        sse_kms_key_id=s3_sse_kms_key_id,
        connections=connections or 4,
    )
    return StoreOptions(
        s3=s3,
        limit_upload=limit_upload,
        limit_download=limit_download,
        connections=connections,
        retries=retries,
        memory_limit=memory_limit,
    )


STORE_FLAGS = (
    "storage_class",
    "s3_path_style",
    "s3_anonymous",
    "s3_sse",
    "s3_sse_kms_key_id",
    "connections",
    "limit_upload",
    "limit_download",
    "retries",
    "memory_limit",
)


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The store's options, cache and output options (for commands that name their store
    by an argument, not --repo), turned into ``store`` (StoreOptions), ``cache_dir``,
    ``use_cache`` and ``out``."""

    @repository_option("--cache-dir", metavar="DIR", help="Local cache directory.")
    @repository_option("--no-cache", is_flag=True, help="Use no local cache.")
    @_store_option_flags
    @output_option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
    @output_option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
    @functools.wraps(f)
    def wrapper(
        cache_dir: str | None, no_cache: bool, json_mode: bool, quiet: bool, **kwargs: Any
    ) -> Any:
        flags = {k: kwargs.pop(k) for k in STORE_FLAGS}
        return f(
            store=store_from_flags(**flags),
            cache_dir=cache_dir,
            use_cache=not no_cache,
            out=Output(json_mode=json_mode, quiet=quiet),
            **kwargs,
        )

    return wrapper


def _named(spec: RepoSpec, config_path: str | None) -> RepoSpec:
    """``spec`` for the repository of the configuration file that ``--repo`` names (@NAME, or
    a NAME that is no local path but a repository of the file), with the options given on the
    command line (or by their environment variables) taking precedence; else ``spec``."""
    ref = spec.url or os.environ.get("CAIRN_REPOSITORY")
    name = repositories.named_reference(ref) if ref else None
    if name is None:
        return spec
    load = importlib.import_module("cairn.config.load")  # the sources load only when used
    path = config_path or load.default_path()
    if not ref.startswith("@") and not os.path.exists(path):  # type: ignore[union-attr]
        return spec
    config = load.load_config(path)
    if not ref.startswith("@") and name not in config.repositories:  # type: ignore[union-attr]
        return spec
    ctx = click.get_current_context()
    given = frozenset(
        p
        for p in ctx.params
        if ctx.get_parameter_source(p) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    )
    return repositories.overlaid(repositories.find_repository(config, name), spec, given)


def _size(text: str, option: str) -> int:
    try:
        return parse_size(text)
    except UsageError as e:
        raise click.BadParameter(str(e), param_hint=option) from None


@dataclass(frozen=True)
class SourceFlags:
    """What --from-repo and its password flags gave (a copy's source)."""

    url: str | None = None
    password_file: str | None = None
    password_command: str | None = None
    key_hint: str | None = None

    def spec(self, like: RepoSpec) -> RepoSpec:
        """The source, opened with the store options of ``like`` (the destination); ``@NAME``
        names a repository of the configuration file the command was given (--config)."""
        ctx = click.get_current_context(silent=True)
        config_path = ctx.params.get("config_path") if ctx is not None else None
        from cairn.app.copy import source_spec  # the copy's code, for init and copy only

        return source_spec(
            self.url, self.password_file, self.password_command, self.key_hint, like, config_path
        )


def from_repo_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--from-repo, --from-password-file, --from-password-command, --from-key-hint, turned
    into ``source`` (SourceFlags)."""

    @repository_option(
        "--from-repo",
        metavar="URL",
        help="Repository to copy from (or $CAIRN_FROM_REPOSITORY; @NAME: of the config file).",
    )
    @repository_option(
        "--from-password-file",
        metavar="FILE",
        help="Read the source's password from FILE (or $CAIRN_FROM_PASSWORD_FILE).",
    )
    @repository_option(
        "--from-password-command",
        metavar="CMD",
        help="Run CMD for the source's password (or $CAIRN_FROM_PASSWORD).",
    )
    @repository_option("--from-key-hint", metavar="ID", help="Try this key of the source first.")
    @functools.wraps(f)
    def wrapper(
        from_repo: str | None,
        from_password_file: str | None,
        from_password_command: str | None,
        from_key_hint: str | None,
        **kwargs: Any,
    ) -> Any:
        flags = SourceFlags(from_repo, from_password_file, from_password_command, from_key_hint)
        return f(source=flags, **kwargs)

    return wrapper


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--host, --tag, --path, turned into ``flt``."""

    @click.option("--host", "hosts", multiple=True, help="Only snapshots of this host.")
    @click.option(
        "--tag", "tags", multiple=True, help="Only snapshots with these tags (a,b: both)."
    )
    @click.option("--path", "paths", multiple=True, help="Only snapshots that include this path.")
    @functools.wraps(f)
    def wrapper(
        hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...], **kw: Any
    ) -> Any:
        return f(flt=SnapshotFilter(hosts=hosts, tags=tags, paths=paths), **kw)

    return wrapper
