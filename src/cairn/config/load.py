"""Finding and reading the configuration file."""

from __future__ import annotations

import os

import platformdirs

from cairn.config.document import Document
from cairn.config.schema import Config, read_config
from cairn.core.errors import ConfigError


def default_path() -> str:
    """``$XDG_CONFIG_HOME/cairn/config.toml``, usually ``~/.config/cairn/config.toml``."""
    return os.path.join(platformdirs.user_config_dir("cairn"), "config.toml")


def load_config(path: str | None = None) -> Config:
    path = path or default_path()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (write one, or use --config FILE)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 (byte {e.start})") from None
    return read_config(Document.parse(path, text))
