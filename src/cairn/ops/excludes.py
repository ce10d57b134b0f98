"""Exclude and include patterns, in the style of restic and gitignore.

- ``*`` matches within one path component, ``**`` across components, ``?`` one character,
  ``[...]`` a character class.
- A pattern without ``/`` matches any single path component (``*.tmp``, ``node_modules``).
- A pattern starting with ``/`` is anchored at the root; other patterns containing ``/``
  match any trailing part of the path (``cache/*.bin`` matches ``/home/u/cache/x.bin``).
- Patterns are matched against raw path bytes, so non-UTF-8 names can be matched too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from cairn.core.errors import UsageError


def _translate(pattern: bytes) -> bytes:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            if pattern[i : i + 2] == b"**":
                out.append(b".*")
                i += 2
                continue
            out.append(b"[^/]*")
        elif c == b"?":
            out.append(b"[^/]")
        elif c == b"[":
            j = pattern.find(b"]", i + 2 if pattern[i + 1 : i + 2] in (b"!", b"]") else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith(b"!"):
                    body = b"^" + body[1:]
                out.append(b"[" + body.replace(b"\\", b"\\\\") + b"]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return b"".join(out)


class PathMatcher:
    def __init__(self, patterns: Iterable[str | bytes]) -> None:
        self.patterns = [p if isinstance(p, str) else os.fsdecode(p) for p in patterns]
        regexes = []
        for p in self.patterns:
            raw = os.fsencode(p).rstrip(b"/")
            if not raw:
                continue
            body = _translate(raw.lstrip(b"/"))
            anchor = b"^/" if raw.startswith(b"/") else b"(?:^|/)"
            regexes.append(anchor + body + b"$")
        try:
            self._re = re.compile(b"|".join(regexes), re.DOTALL) if regexes else None
        except re.error as e:
            raise UsageError(f"invalid pattern: {e}") from None

    def __bool__(self) -> bool:
        return self._re is not None

    def matches(self, path: bytes) -> bool:
        """``path`` is absolute ('/a/b/c'); true if the pattern set matches it."""
        return self._re is not None and self._re.search(path) is not None


def read_pattern_file(path: str) -> list[str]:
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read exclude file {path}: {e.strerror}") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(b"#"):
            out.append(os.fsdecode(line))
    return out
