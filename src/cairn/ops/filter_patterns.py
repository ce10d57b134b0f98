"""Exclude patterns with restic's meaning (its ``internal/filter``), line for line.

- A pattern is cleaned first, as restic (Go's ``filepath.Clean``) does: ``//`` and ``.``
  components go, ``a/../`` is resolved, ``/..`` at the root stays at the root, a trailing
  ``/`` goes. A relative pattern that still climbs (``../x``) or is empty (``.``) can never
  match and is refused.
- The cleaned pattern is split into components. ``**`` as a whole component stands for any
  number of components (none too); any other component is matched against one path component
  with Go's ``filepath.Match``: ``*``, ``?``, ``[a-z]``, ``[^a-z]``, and ``\\`` escapes the
  next character (``foo\\*`` matches ``foo*`` only).
- A pattern starting with ``/`` is matched from the root, any other one from any component.
  A pattern matches a path when it matches the path or one of its parents: ``/foo`` matches
  ``/foo/bar/baz``.
- A pattern starting with ``!`` cancels an earlier match: of the lines that match a path, the
  last one decides. As in restic, a directory an earlier line excluded is not entered, so a
  ``!`` line cannot bring back what lies beneath it.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cairn.core.errors import UsageError


class BadPattern(UsageError):
    pass


def clean(pattern: str) -> str:
    """``pattern`` as Go's ``filepath.Clean`` writes it."""
    out = posixpath.normpath(pattern)
    if out.startswith("//"):  # POSIX keeps two leading slashes, Go does not
        out = "/" + out.lstrip("/")
    return out


def _escaped(text: str, i: int, pattern: str) -> tuple[str, int]:
    """One character of a class (``\\`` escapes it) at ``i``: the character and where next."""
    if i >= len(text):
        raise BadPattern(f"invalid pattern {pattern!r}: a character class is not closed")
    c = text[i]
    if c == "\\":
        if i + 1 >= len(text):
            raise BadPattern(f"invalid pattern {pattern!r}: it ends with an escape")
        return text[i + 1], i + 2
    if c in "-]":
        raise BadPattern(f"invalid pattern {pattern!r}: '{c}' where a character was expected")
    return c, i + 1


def _component(part: str, pattern: str) -> str:
    """One component of a pattern, matched as Go's ``filepath.Match``, as a regex."""
    out = []
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        if c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise BadPattern(f"invalid pattern {pattern!r}: it ends with an escape")
            out.append(re.escape(part[i + 1]))
            i += 2
        elif c == "[":
            i += 1
            negate = part[i : i + 1] == "^"
            if negate:
                i += 1
            ranges = []
            while True:
                if i < n and part[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = _escaped(part, i, pattern)
                hi = lo
                if part[i : i + 1] == "-":
                    hi, i = _escaped(part, i + 1, pattern)
                ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
            out.append(f"(?!/)[{'^' if negate else ''}{''.join(ranges)}]")
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _regex(body: str, pattern: str) -> str:
    """The regex of a pattern (without ``!``): it matches a path or one of its parents."""
    cleaned = clean(body)
    if cleaned == "." or cleaned == ".." or cleaned.startswith("../"):
        raise BadPattern(f"the pattern {pattern!r} can never match (it is {cleaned!r} cleaned)")
    anchored = cleaned.startswith("/")
    parts = [p for p in cleaned.split("/") if p]
    if not anchored:
        while parts and parts[0] == "**":  # any number of components before: anywhere
            parts.pop(0)
        if not parts:
            return ""
    regex = [r"\A" if anchored else ""]
    for i, part in enumerate(parts):
        if part == "**":
            regex.append(r"(?:/[^/]+)*")
        else:
            lead = "/" if anchored or i else r"(?:\A|/)"
            regex.append(lead + _component(part, pattern))
    regex.append(r"(?=/|\Z)")
    return "".join(regex)


@dataclass(frozen=True)
class _Run:
    """Consecutive lines of one kind: ``negated`` lines cancel a match."""

    negated: bool
    regex: re.Pattern[str]


class ExcludePatterns:
    """A list of exclude lines, restic's way; :meth:`matches` tells whether a path is out."""

    def __init__(self, patterns: Iterable[str | bytes], ignore_case: bool = False) -> None:
        self.patterns = [p if isinstance(p, str) else os.fsdecode(p) for p in patterns]
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        lines: list[tuple[bool, str]] = []
        for p in self.patterns:
            if not p:
                continue  # restic skips empty lines
            negated = p.startswith("!")
            lines.append((negated, _regex(p[1:] if negated else p, p)))
        # negations before any exclusion cancel nothing
        while lines and lines[0][0]:
            lines.pop(0)
        runs: list[_Run] = []
        start = 0
        for i in range(1, len(lines) + 1):
            if i == len(lines) or lines[i][0] != lines[start][0]:
                group = "|".join(f"(?:{r})" for _, r in lines[start:i])
                try:
                    runs.append(_Run(lines[start][0], re.compile(group, flags)))
                except re.error as e:
                    raise BadPattern(f"invalid pattern: {e}") from None
                start = i
        self._runs = runs[::-1]  # the last line that matches decides

    def __bool__(self) -> bool:
        return bool(self._runs)

    def matches(self, path: bytes | str) -> bool:
        """``path`` is absolute ('/a/b/c'); true if the lines exclude it."""
        text = path if isinstance(path, str) else os.fsdecode(path)
        for run in self._runs:
            if run.regex.search(text) is not None:
                return not run.negated
        return False
