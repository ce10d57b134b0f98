"""Repositories named in the configuration file: ``[repositories.NAME]`` turned into what
opens it (URL, password source, store options), for ``cairn run`` and for every command given
``--repo @NAME`` (or ``--repo NAME`` when no such local path exists)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cairn.app.context import RepoSpec, StoreOptions
from cairn.app.passwords import EMPTY, PasswordSource
from cairn.core.errors import UsageError
from cairn.storage.s3config import S3Options

if TYPE_CHECKING:  # the configuration (its sources, croniter) loads only when a name is used
    from cairn.config.schema import Config, RepositoryConfig

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # as cairn.config.schema.NAME


@dataclass(frozen=True)
class EnvPassword(PasswordSource):
    """The password is in the environment variable ``name`` (password-env in the config)."""

    name: str = ""

    def get(self, confirm: bool = False) -> bytes:
        value = os.environ.get(self.name)
        if value is None:
            raise UsageError(f"no password: the environment variable {self.name} is not set")
        if not value:
            raise UsageError(f"the environment variable {self.name} is empty: {EMPTY}")
        return value.encode()


def password_source(repo: RepositoryConfig) -> PasswordSource:
    if repo.password_env:
        return EnvPassword(name=repo.password_env)
    return PasswordSource(file=repo.password_file, command=repo.password_command)


def has_password(repo: RepositoryConfig) -> bool:
    return bool(repo.password_env or repo.password_file or repo.password_command)


def s3_options(repo: RepositoryConfig) -> S3Options:
    return S3Options(
        storage_class=repo.storage_class,
        path_style=repo.s3_path_style,
        anonymous=repo.s3_anonymous,
        sse=repo.s3_sse,
        sse_kms_key_id=repo.s3_sse_kms_key_id,
        region=repo.s3_region,
        profile=repo.s3_profile,
        connections=repo.connections or 4,
    )


def repo_spec(repo: RepositoryConfig) -> RepoSpec:
    return RepoSpec(
        url=repo.url,
        password=password_source(repo),
        cache_dir=repo.cache_dir,
        store=StoreOptions(
            s3=s3_options(repo),
            limit_upload=repo.limit_upload,
            limit_download=repo.limit_download,
            retries=repo.retries,
            connections=repo.connections,
            memory_limit=repo.memory_limit,
        ),
    )


def named_reference(ref: str) -> str | None:
    """The repository name ``ref`` refers to: ``@NAME`` always; a bare ``NAME`` only when
    no file or directory of that name exists here (then it is a local path)."""
    if ref.startswith("@"):
        return ref[1:]
    if NAME.fullmatch(ref) and not os.path.lexists(ref):
        return ref
    return None


def find_repository(config: Config, name: str) -> RepositoryConfig:
    """The repository ``name`` of ``config``, or a one-line error listing the known names."""
    try:
        return config.repositories[name]
    except KeyError:
        known = ", ".join(config.repositories) or "none ([repositories.NAME])"
        message = f"no repository {name!r} in {config.file} (repositories: {known})"
        raise UsageError(message) from None


# option name -> field it sets, of S3Options and of StoreOptions
_S3_FIELDS = {
    "storage_class": "storage_class",
    "s3_path_style": "path_style",
    "s3_anonymous": "anonymous",
    "s3_sse": "sse",
    "s3_sse_kms_key_id": "sse_kms_key_id",
    "connections": "connections",
}
_STORE_FIELDS = ("limit_upload", "limit_download", "retries", "connections", "memory_limit")


def overlaid(repo: RepositoryConfig, cli: RepoSpec, given: frozenset[str]) -> RepoSpec:
    """The spec of the configured ``repo`` with what the command line set (``given``: the
    names of the options given on it or by their environment variables) taking precedence.
    A password option given overrides the configuration's password source; with neither, the
    usual chain applies ($CAIRN_PASSWORD, $CAIRN_PASSWORD_FILE, a prompt)."""
    base = repo_spec(repo)
    password = base.password if has_password(repo) else cli.password
    if {"password_file", "password_command"} & given:
        password = cli.password
    s3 = replace(
        base.store.s3,
        **{f: getattr(cli.store.s3, f) for opt, f in _S3_FIELDS.items() if opt in given},
    )
    store = replace(
        base.store, s3=s3, **{f: getattr(cli.store, f) for f in _STORE_FIELDS if f in given}
    )
    return replace(
        base,
        password=password,
        cache_dir=cli.cache_dir if "cache_dir" in given else base.cache_dir,
        use_cache=cli.use_cache,
        key_hint=cli.key_hint,
        notice=cli.notice,
        store=store,
    )
