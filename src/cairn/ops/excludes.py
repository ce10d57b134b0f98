"""Exclude and include patterns, in the style of restic and gitignore.

- ``*`` matches within one path component, ``**`` across components, ``?`` one character,
  ``[...]`` a character class.
- A pattern without ``/`` matches any single path component (``*.tmp``, ``node_modules``).
- A pattern starting with ``/`` is anchored at the root; other patterns containing ``/``
  match any trailing part of the path (``cache/*.bin`` matches ``/home/u/cache/x.bin``).
- Paths are decoded like file names (UTF-8, undecodable bytes as surrogate escapes), so ``?``
  matches one character, and names that are not valid UTF-8 can be matched too.
- ``ignore_case``: the patterns match regardless of case (restic's ``--iexclude``).

Tag rules (``--exclude-if-present NAME[:HEADER]``, ``--exclude-caches``) skip what a directory
holds but the tag file, when it holds a file NAME beginning with HEADER, as restic does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cairn.core.errors import UsageError


def _class(body: str) -> str:
    """A glob character class as a regex class that never matches '/'."""
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    body = body.replace("\\", "\\\\").replace("]", "\\]").replace("[", "\\[")
    return f"[^/{body}]" if negate else f"(?!/)[{body}]"


def _translate(pattern: str) -> str:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")  # zero or more whole directories
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            # a ']' right after '[' or '[!' belongs to the class
            first = i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1
            j = pattern.find("]", first + 1 if pattern[first : first + 1] == "]" else first)
            if j < 0:
                out.append(re.escape(c))
            else:
                out.append(_class(pattern[i + 1 : j]))
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class PathMatcher:
    def __init__(self, patterns: Iterable[str | bytes], ignore_case: bool = False) -> None:
        self.patterns = [p if isinstance(p, str) else os.fsdecode(p) for p in patterns]
        regexes = []
        for p in self.patterns:
            pattern = p.rstrip("/")
            if not pattern:
                continue
            anchor = "^/" if pattern.startswith("/") else "(?:^|/)"
            regexes.append(anchor + _translate(pattern.lstrip("/")) + "$")
        try:
            flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
            self._re = re.compile("|".join(regexes), flags) if regexes else None
        except re.error as e:
            raise UsageError(f"invalid pattern: {e}") from None

    def __bool__(self) -> bool:
        return self._re is not None

    def matches(self, path: bytes) -> bool:
        """``path`` is absolute ('/a/b/c'); true if the pattern set matches it."""
        return self._re is not None and self._re.search(os.fsdecode(path)) is not None


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


# a cache directory's tag (https://bford.info/cachedir/): the file, and how it must begin
CACHEDIR_TAG = b"CACHEDIR.TAG"
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


@dataclass(frozen=True)
class TagRule:
    """A directory holding a file ``name`` that begins with ``header`` (any file of that name
    if ``header`` is empty) is backed up with that file only."""

    name: bytes
    header: bytes = b""

    @classmethod
    def parse(cls, text: str) -> TagRule:
        """``NAME`` or ``NAME:HEADER``."""
        name, _, header = text.partition(":")
        if not name or "/" in name or name in (".", ".."):
            raise UsageError(f"--exclude-if-present: {text!r} does not start with a file name")
        return cls(os.fsencode(name), os.fsencode(header))

    def holds(self, directory: bytes) -> bool:
        """Whether the tag file in ``directory`` (which has an entry of that name) qualifies:
        its first bytes are the header. A tag that cannot be read does not."""
        if not self.header:
            return True
        path = directory.rstrip(b"/") + b"/" + self.name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            return os.read(fd, len(self.header)) == self.header
        except OSError:
            return False
        finally:
            os.close(fd)


CACHEDIR_RULE = TagRule(CACHEDIR_TAG, CACHEDIR_SIGNATURE)
