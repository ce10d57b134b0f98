"""Checking an http(s) URL before it is used (monitoring URLs come from configuration files)."""

from __future__ import annotations

from urllib.parse import urlsplit


def http_url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as an http:// or https:// URL ("is malformed (...)",
    "is not ..."), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError as e:
        return f"is malformed ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http:// or https:// URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "is malformed (it holds spaces or control characters)"
    return None


OBJECT_STORE, LOCAL_DIRECTORY = "s3", "local"


def store_kind(repository_url: str) -> str:
    """What a repository URL names: an object store (``s3://...``, ``s3:https://...``) or a
    local directory. The one place that decides it."""
    return OBJECT_STORE if repository_url.startswith("s3:") else LOCAL_DIRECTORY
