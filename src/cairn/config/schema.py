"""The configuration's objects, and how each is read from its TOML table.

    [repositories.NAME]   url, password-file | password-command | password-env, cache-dir,
                          storage-class, s3-path-style, s3-anonymous, s3-sse, s3-sse-kms-key-id,
                          s3-region, s3-profile, connections, limit-upload, limit-download,
                          retries, memory-limit ("256M": a size)
    [jobs.NAME]           repository, paths + exclude, exclude-file, one-file-system
                          | [jobs.NAME.source] kind = postgres | mysql | sqlite | svn | command,
                          tags, host, schedule, healthcheck
    [jobs.NAME.retention] keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly,
                          keep-yearly (a count or "unlimited"), keep-within,
                          keep-within-hourly/daily/weekly/monthly/yearly, keep-tag, prune
    [jobs.NAME.hooks]     before, after (shell commands)
    [serve]               restore-roots (directories `cairn serve` may restore into)

Relative file names (password files, exclude files, option files) are relative to the
configuration file's directory; the paths a job backs up must be absolute (``~`` expands).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cairn.config.document import Document, Table
from cairn.config.schedule import Schedule, ScheduleError
from cairn.core.errors import UsageError
from cairn.core.memory import MIN_MEMORY_LIMIT
from cairn.core.units import parse_size
from cairn.core.urls import LOCAL_DIRECTORY, http_url_problem, store_kind
from cairn.ops.retention import PERIOD_RULES, UNLIMITED, Duration, PolicyError
from cairn.ops.retention import Policy as RetentionPolicy
from cairn.ops.sources.command import CommandStreamSource
from cairn.ops.sources.mysql import MysqlSource
from cairn.ops.sources.postgres import PostgresSource
from cairn.ops.sources.sqlite import SqliteSource
from cairn.ops.sources.stream import StreamItem, stream_path
from cairn.ops.sources.svn import SvnSource
from cairn.storage.s3config import STORAGE_CLASSES

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Source = PostgresSource | MysqlSource | SqliteSource | SvnSource | CommandStreamSource


@dataclass(frozen=True)
class RepositoryConfig:
    name: str
    url: str
    password_file: str | None = None
    password_command: str | None = None
    password_env: str | None = None  # the name of an environment variable holding it
    cache_dir: str | None = None
    storage_class: str | None = None
    s3_path_style: bool = False
    s3_anonymous: bool = False
    s3_sse: str | None = None
    s3_sse_kms_key_id: str | None = None
    s3_region: str | None = None
    s3_profile: str | None = None
    connections: int | None = None  # uploads in flight (default: by backend, as the CLI)
    limit_upload: int | None = None  # KiB/s
    limit_download: int | None = None  # KiB/s
    retries: int = 8
    memory_limit: int | None = None  # bytes (cairn.app.budget)


@dataclass(frozen=True)
class MirrorJob:
    """What a job that mirrors its one directory (``mirror = URL`` or ``"@NAME"``) does."""

    delete: bool = False
    keep_deleted: int | None = None  # days
    checksum: bool = False


@dataclass(frozen=True)
class Retention:
    policy: RetentionPolicy
    prune: bool = True  # prune after forget


@dataclass(frozen=True)
class Hooks:
    before: tuple[str, ...] = ()  # run in order before the backup; one failing fails the job
    after: tuple[str, ...] = ()  # run after the job, whether it succeeded or failed


@dataclass(frozen=True)
class JobConfig:
    name: str
    repository: RepositoryConfig
    paths: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    exclude_files: tuple[str, ...] = ()
    one_file_system: bool = False
    source: Source | None = None
    tags: tuple[str, ...] = ()
    host: str | None = None
    schedule: Schedule | None = None
    retention: Retention | None = None
    hooks: Hooks = field(default_factory=Hooks)
    healthcheck: str | None = None
    mirror: MirrorJob | None = None  # a mirror job: ``repository`` is where the mirror lives
    # a copy job: the repository whose snapshots (of ``host`` and with all of ``tags``, if
    # given) it copies into ``repository``
    copy_from: RepositoryConfig | None = None

    @property
    def tag(self) -> str:
        """The tag every snapshot of this job carries, by which its retention finds them."""
        return f"job:{self.name}"

    def streams(self) -> list[StreamItem]:
        return self.source.streams() if self.source is not None else []


@dataclass(frozen=True)
class ServeConfig:
    """What the web interface (`cairn serve`) may do beyond reading."""

    restore_roots: tuple[str, ...] = ()  # absolute directories restores may write below


@dataclass(frozen=True)
class Config:
    file: str
    repositories: dict[str, RepositoryConfig]
    jobs: dict[str, JobConfig]
    serve: ServeConfig = field(default_factory=ServeConfig)


REPOSITORY_KEYS = (
    "url", "password-file", "password-command", "password-env", "password", "cache-dir",
    "storage-class", "s3-path-style", "s3-anonymous", "s3-sse", "s3-sse-kms-key-id", "s3-region",
    "s3-profile", "connections", "limit-upload", "limit-download", "retries", "memory-limit",
)  # fmt: skip
JOB_KEYS = (
    "repository", "paths", "exclude", "exclude-file", "one-file-system", "source", "tags",
    "host", "schedule", "healthcheck", "retention", "hooks", "mirror", "delete", "keep-deleted",
    "checksum", "copy-from",
)  # fmt: skip
MIRROR_ONLY = ("delete", "keep-deleted", "checksum")
RETENTION_KEYS = (
    "keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly",
    "keep-within", "keep-within-hourly", "keep-within-daily", "keep-within-weekly",
    "keep-within-monthly", "keep-within-yearly", "keep-tag", "prune",
)  # fmt: skip
SOURCE_KEYS = {
    "postgres": ("databases", "dumpall", "host", "port", "user", "passfile", "bin-dir", "options"),
    "mysql": (
        "databases", "all-databases", "host", "port", "socket", "user", "defaults-file",
        "program", "options",
    ),
    "sqlite": ("path", "filename"),
    "svn": ("repository", "parent", "svnadmin", "options"),
    "command": ("command", "filename"),
}  # fmt: skip


SOURCE_KINDS = tuple(SOURCE_KEYS)


def read_config(doc: Document) -> Config:
    root = doc.root()
    root.allow("repositories", "jobs", "serve")
    base = Path(doc.file).resolve().parent
    repos = {}
    for name, t in root.tables("repositories"):
        _check_name(t, name, "repository")
        repos[name] = _repository(t, name, base)
    jobs = {}
    for name, t in root.tables("jobs"):
        _check_name(t, name, "job")
        jobs[name] = _job(t, name, repos, base)
    serve = root.table("serve")
    root.done()
    return Config(doc.file, repos, jobs, _serve(serve) if serve else ServeConfig())


def _serve(t: Table) -> ServeConfig:
    t.allow("restore-roots")
    roots = []
    for root in t.str_list("restore-roots"):
        path = Path(os.path.expanduser(root))
        if not path.is_absolute():
            raise t.error("restore-roots", f"{root!r} is not an absolute path")
        roots.append(os.path.normpath(path))
    t.done()
    return ServeConfig(restore_roots=tuple(roots))


def _check_name(t: Table, name: str, what: str) -> None:
    if not NAME.fullmatch(name):
        raise t.error(None, f"a {what} name may hold letters, digits, '_', '.' and '-'")


def _size(t: Table, key: str) -> int | None:
    text = t.str(key)
    if text is None:
        return None
    try:
        size = parse_size(text)
    except UsageError:
        raise t.error(key, "must be a size such as 256M or 1G") from None
    if size < MIN_MEMORY_LIMIT:
        raise t.error(key, f"must be at least {MIN_MEMORY_LIMIT >> 20}M")
    return size


def _file(t: Table, key: str, base: Path, required: bool = False) -> str | None:
    value = t.str(key, required)
    if value is None:
        return None
    return str(base / os.path.expanduser(value))


def _repository(t: Table, name: str, base: Path) -> RepositoryConfig:
    t.allow(*REPOSITORY_KEYS)
    url = t.str("url", required=True)
    assert url is not None
    local = store_kind(url) == LOCAL_DIRECTORY
    if local and not os.path.isabs(os.path.expanduser(url.removeprefix("local:"))):
        raise t.error("url", "a local repository path must be absolute")
    sources = [k for k in ("password-file", "password-command", "password-env") if t.has(k)]
    if len(sources) > 1:
        raise t.error(sources[1], "give only one of password-file, password-command, password-env")
    if t.has("password"):
        raise t.error(
            "password",
            "a password does not belong in this file: use password-file, "
            "password-command or password-env",
        )
    env = t.str("password-env")
    if env is not None and not ENV_NAME.fullmatch(env):
        raise t.error("password-env", "must be the name of an environment variable")
    storage_class = t.str("storage-class")
    if storage_class is not None and storage_class.upper() not in STORAGE_CLASSES:
        raise t.error("storage-class", f"one of {', '.join(sorted(STORAGE_CLASSES))}")
    sse = t.str("s3-sse")
    if sse not in (None, "AES256", "aws:kms"):
        raise t.error("s3-sse", "must be AES256 or aws:kms")
    repo = RepositoryConfig(
        name=name,
        url=os.path.expanduser(url) if local else url,
        password_file=_file(t, "password-file", base),
        password_command=t.str("password-command"),
        password_env=env,
        cache_dir=_file(t, "cache-dir", base),
        storage_class=storage_class.upper() if storage_class else None,
        s3_path_style=t.bool("s3-path-style"),
        s3_anonymous=t.bool("s3-anonymous"),
        s3_sse=sse,
        s3_sse_kms_key_id=t.str("s3-sse-kms-key-id"),
        s3_region=t.str("s3-region"),
        s3_profile=t.str("s3-profile"),
        connections=t.int("connections", 1, 64),
        limit_upload=t.int("limit-upload", 1),
        limit_download=t.int("limit-download", 1),
        retries=t.int("retries", 1, 100) or 8,
        memory_limit=_size(t, "memory-limit"),
    )
    t.done()
    return repo


def _job(t: Table, name: str, repos: dict[str, RepositoryConfig], base: Path) -> JobConfig:
    t.allow(*JOB_KEYS)
    if t.has("copy-from"):
        return _copy_job(t, name, repos)
    mirror_url = t.str("mirror")
    repo_name = t.str("repository", required=mirror_url is None)
    if mirror_url is not None and repo_name is not None:
        raise t.error("mirror", "a job backs up to a repository or mirrors, not both")
    if mirror_url is None:
        for key in MIRROR_ONLY:
            if t.has(key):
                raise t.error(key, "applies to mirror jobs only (mirror = URL)")
    if mirror_url is not None:
        repository = _mirror_location(t, mirror_url, repos)
    elif repo_name not in repos:
        known = ", ".join(repos) or "none is defined"
        raise t.error("repository", f"no repository {repo_name!r} ([repositories.NAME]: {known})")
    else:
        repository = repos[repo_name]
    paths = t.str_list("paths")
    source_table = t.table("source")
    if bool(paths) == (source_table is not None):
        raise t.error(None, "a job backs up either paths or a [source], exactly one of them")
    for i, p in enumerate(paths):
        if not os.path.isabs(os.path.expanduser(p)):
            raise t.doc.error((*t.path, "paths", i), "must be an absolute path")
    excludes = t.str_list("exclude")
    exclude_files = tuple(str(base / os.path.expanduser(f)) for f in t.str_list("exclude-file"))
    one_fs = t.bool("one-file-system")
    if source_table is not None and (excludes or exclude_files or one_fs):
        raise t.error(None, "exclude, exclude-file and one-file-system apply to paths only")
    tags = t.str_list("tags")
    for i, tag in enumerate(tags):
        if "," in tag:
            raise t.doc.error((*t.path, "tags", i), "a tag cannot contain ','")
    schedule = _schedule(t)
    healthcheck = _healthcheck(t)
    retention = t.table("retention")
    hooks = t.table("hooks")
    mirror = None
    if mirror_url is not None:
        if len(paths) != 1 or excludes or exclude_files or one_fs or tags or retention:
            raise t.error(
                None,
                "a mirror job mirrors one directory: paths = [DIR], and no exclude, "
                "one-file-system, tags or retention",
            )
        keep = t.int("keep-deleted", 0)
        mirror = MirrorJob(t.bool("delete"), keep, t.bool("checksum"))
    job = JobConfig(
        name=name,
        repository=repository,
        paths=tuple(os.path.normpath(os.path.expanduser(p)) for p in paths),
        excludes=excludes,
        exclude_files=exclude_files,
        one_file_system=one_fs,
        source=_source(source_table, base) if source_table is not None else None,
        tags=tags,
        host=t.str("host"),
        schedule=schedule,
        retention=_retention(retention) if retention is not None else None,
        hooks=_hooks(hooks) if hooks is not None else Hooks(),
        healthcheck=healthcheck,
        mirror=mirror,
    )
    t.done()
    return job


def _copy_job(t: Table, name: str, repos: dict[str, RepositoryConfig]) -> JobConfig:
    """A job that copies the snapshots of ``copy-from`` into ``repository`` (cairn copy):
    ``host`` and ``tags`` choose which; it backs up nothing and forgets nothing."""
    source, dest = (_named_repository(t, key, repos) for key in ("copy-from", "repository"))
    if source.url == dest.url:
        raise t.error("copy-from", "a copy job copies into another repository")
    for key in ("mirror", "paths", "source", "exclude", "exclude-file", "one-file-system",
                "retention", *MIRROR_ONLY):  # fmt: skip
        if t.has(key):
            raise t.error(
                key,
                "does not apply to a copy job (copy-from = NAME): it copies snapshots, "
                "and keeps them as the destination's own forget and prune decide",
            )
    tags = t.str_list("tags")
    schedule = _schedule(t)
    healthcheck = _healthcheck(t)
    hooks = t.table("hooks")
    job = JobConfig(
        name=name,
        repository=dest,
        tags=tags,
        host=t.str("host"),
        schedule=schedule,
        hooks=_hooks(hooks) if hooks is not None else Hooks(),
        healthcheck=healthcheck,
        copy_from=source,
    )
    t.done()
    return job


def _named_repository(t: Table, key: str, repos: dict[str, RepositoryConfig]) -> RepositoryConfig:
    name = t.str(key, required=True)
    if name not in repos:
        known = ", ".join(repos) or "none is defined"
        raise t.error(key, f"no repository {name!r} ([repositories.NAME]: {known})")
    return repos[name]


def _schedule(t: Table) -> Schedule | None:
    text = t.str("schedule")
    try:
        return Schedule.parse(text) if text else None
    except ScheduleError as e:
        raise t.error("schedule", str(e)) from None


def _healthcheck(t: Table) -> str | None:
    healthcheck = t.str("healthcheck")
    if healthcheck is not None and not re.match(r"https?://[^/\s]+", healthcheck):
        raise t.error("healthcheck", "must be an http:// or https:// URL")
    if healthcheck is not None and (problem := http_url_problem(healthcheck)):
        raise t.error("healthcheck", f"the URL {problem}")
    return healthcheck


def _mirror_location(t: Table, url: str, repos: dict[str, RepositoryConfig]) -> RepositoryConfig:
    """Where a mirror job's mirror lives: ``@NAME`` takes the url and store options of
    ``[repositories.NAME]`` (its password keys unused), anything else is the URL itself."""
    if url.startswith("@"):
        if url[1:] not in repos:
            known = ", ".join(repos) or "none is defined"
            raise t.error("mirror", f"no repository {url[1:]!r} ([repositories.NAME]: {known})")
        return repos[url[1:]]
    if store_kind(url) == LOCAL_DIRECTORY and not os.path.isabs(os.path.expanduser(url)):
        raise t.error("mirror", "a local mirror path must be absolute")
    return RepositoryConfig(name=url, url=os.path.expanduser(url))


def _retention(t: Table) -> Retention:
    t.allow(*RETENTION_KEYS)
    counts = {}
    for rule in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        key = f"keep-{rule}"
        value = t.data.get(key)
        if value == "unlimited":
            t.str(key)
            counts[rule] = UNLIMITED
        else:
            counts[rule] = t.get(key, int, 'a count or "unlimited"') or 0
            if counts[rule] < 0:
                raise t.error(key, f'must be a count or "unlimited", not {counts[rule]}')
    within_text = t.str("keep-within")
    keep_tags = t.str_list("keep-tag")
    periods = []
    for rule in PERIOD_RULES:
        text = t.str(f"keep-within-{rule}")
        if text:
            try:
                periods.append((rule, Duration.parse(text)))
            except PolicyError as e:
                raise t.error(f"keep-within-{rule}", str(e)) from None
    try:
        within = Duration.parse(within_text) if within_text else None
        policy = RetentionPolicy(
            **counts,
            within=within,
            tags=tuple(tuple(x for x in tag.split(",") if x) for tag in keep_tags),
            within_periods=tuple(periods),
        )
    except PolicyError as e:
        raise t.error("keep-within" if within_text else None, str(e)) from None
    if policy.is_empty():
        raise t.error(None, "a retention policy needs at least one keep-* rule")
    retention = Retention(policy, prune=t.bool("prune", default=True))
    t.done()
    return retention


def _hooks(t: Table) -> Hooks:
    t.allow("before", "after")
    hooks = Hooks(before=t.str_list("before"), after=t.str_list("after"))
    t.done()
    return hooks


def _stream_name(t: Table, key: str) -> str | None:
    name = t.str(key)
    if name is None:
        return None
    try:
        return stream_path(name)
    except UsageError as e:
        raise t.error(key, str(e)) from None


def _source(t: Table, base: Path) -> Source:
    kind = t.str("kind", required=True)
    if kind not in SOURCE_KINDS:
        raise t.error("kind", f"unknown source kind {kind!r} (one of {', '.join(SOURCE_KINDS)})")
    t.allow("kind", *SOURCE_KEYS[kind])
    source: Source
    if kind == "postgres":
        source = PostgresSource(
            databases=t.str_list("databases"),
            dumpall=t.bool("dumpall"),
            host=t.str("host"),
            port=t.int("port", 1, 65535),
            user=t.str("user"),
            passfile=_file(t, "passfile", base),
            bin_dir=_file(t, "bin-dir", base),
            options=t.str_list("options"),
        )
        if source.dumpall and source.databases:
            raise t.error("dumpall", "dumps every database: give no list of databases")
    elif kind == "mysql":
        source = MysqlSource(
            databases=t.str_list("databases"),
            all_databases=t.bool("all-databases"),
            host=t.str("host"),
            port=t.int("port", 1, 65535),
            socket=t.str("socket"),
            user=t.str("user"),
            defaults_file=_file(t, "defaults-file", base),
            program=t.str("program"),
            options=t.str_list("options"),
        )
        if source.all_databases and source.databases:
            raise t.error("all-databases", "dumps every database: give no list of databases")
    elif kind == "sqlite":
        path = _file(t, "path", base, required=True)
        assert path is not None
        source = SqliteSource(path=path, filename=_stream_name(t, "filename"))
    elif kind == "svn":
        repository, parent = _file(t, "repository", base), _file(t, "parent", base)
        if (repository is None) == (parent is None):
            raise t.error(None, "give either repository (one) or parent (all in a directory)")
        source = SvnSource(
            repository=repository,
            parent=parent,
            svnadmin=t.str("svnadmin") or "svnadmin",
            options=t.str_list("options"),
        )
    else:
        command = t.str_list("command", required=True)
        if not command:
            raise t.error("command", "must name a program")
        t.str("filename", required=True)
        filename = _stream_name(t, "filename")
        assert filename is not None
        source = CommandStreamSource(command=command, filename=filename)
    t.done()
    return source
