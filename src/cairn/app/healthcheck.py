"""Pinging a monitoring URL the healthchecks.io way: URL/start when a job starts, URL when it
succeeds, URL/fail when it fails, each a POST whose body is a short, secret-free report.

A ping that cannot be delivered is retried a few times and then reported as a warning: the
monitor notices the missing ping, and the backup itself must not fail because of it. The URL
identifies the check (anyone who has it can ping it), so messages show only its host.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from cairn import __version__
from cairn.core.urls import http_url_problem

TIMEOUT = 10.0  # seconds per attempt
ATTEMPTS = 3
MAX_BODY = 10_000  # bytes of report sent with a ping


def redact(url: str) -> str:
    """``https://hc-ping.com/0f3b...`` -> ``https://hc-ping.com/...``."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}/..."
    except ValueError:
        return "a malformed URL"


def ping_url(url: str, event: str) -> str:
    """``event``: 'start', 'success' or 'fail'."""
    if event == "success":
        return url
    base, sep, query = url.partition("?")
    return f"{base.rstrip('/')}/{event}{sep}{query}"


def ping(url: str, event: str, body: str = "", backoff: float = 1.0) -> str | None:
    """Sends one ping; returns None, or what went wrong (without the URL's secret part).
    Never raises: the monitor's problems are never the job's."""
    bad = http_url_problem(url)
    if bad:
        return f"healthcheck {event} ping not sent: the healthcheck URL {bad}"
    try:
        request = urllib.request.Request(
            ping_url(url, event),
            data=body.encode("utf-8", "replace")[:MAX_BODY],
            method="POST",
            headers={"User-Agent": f"cairn/{__version__}", "Content-Type": "text/plain"},
        )
    except ValueError as e:
        return f"healthcheck {event} ping not sent: the healthcheck URL is malformed ({e})"
    problem = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
            return None
        except urllib.error.HTTPError as e:
            problem = f"HTTP {e.code}"
            if e.code < 500 and e.code != 429:
                break  # the monitor refused it; asking again will not help
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            problem = getattr(reason, "strerror", None) or str(reason)
        except (ValueError, http.client.HTTPException) as e:  # a URL urllib cannot use
            problem = f"{type(e).__name__}: {e}"
            break
    return f"healthcheck {event} ping to {redact(url)} failed: {problem}"
