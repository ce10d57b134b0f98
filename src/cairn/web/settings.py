"""What the server is started with, and the secret its users log in with."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cairn.app.context import RepoSpec
from cairn.config.schema import JobConfig
from cairn.core.errors import UsageError

TOKEN_FILE = "serve-token"


@dataclass(frozen=True)
class Settings:
    secret: str  # the token or password that logs in
    state_dir: Path  # the history and the sessions (SQLite)
    repositories: dict[str, RepoSpec] = field(default_factory=dict)
    jobs: dict[str, JobConfig] = field(default_factory=dict)
    restore_roots: tuple[str, ...] = ()
    secure_cookie: bool = False  # served over TLS: the cookie is sent over TLS only


def login_token(config_dir: Path) -> str:
    """The token made at the first start (``serve-token`` in ``config_dir``, mode 0600), or
    the one made then."""
    path = config_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if token:
        if os.stat(path).st_mode & 0o077:
            raise UsageError(f"{path} is readable by others: chmod 600 it, or remove it")
        return token
    token = secrets.token_urlsafe(24)
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token
