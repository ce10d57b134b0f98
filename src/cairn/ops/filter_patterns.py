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


def _parts(body: str, pattern: str) -> tuple[bool, list[str]]:
    """Whether a pattern (without ``!``) is anchored, and its components, cleaned."""
    cleaned = clean(body)
    if cleaned == "." or cleaned == ".." or cleaned.startswith("../"):
        raise BadPattern(f"the pattern {pattern!r} can never match (it is {cleaned!r} cleaned)")
    return cleaned.startswith("/"), [p for p in cleaned.split("/") if p]


def _regex(anchored: bool, parts: list[str], pattern: str) -> str:
    """The regex of a pattern: it matches a path or one of its parents."""
    if not anchored:
        while parts and parts[0] == "**":  # any number of components before: anywhere
            parts = parts[1:]
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


def _child_regex(anchored: bool, parts: list[str], pattern: str) -> str:
    """The regex of the directories the pattern may match something below (restic's
    ``childMatch``): any for a pattern not anchored; else those whose path and the pattern
    agree as far as both go, up to the first ``**``."""
    if not anchored:
        return ""
    fixed = parts[: parts.index("**")] if "**" in parts else parts
    regex = r"(?=/|\Z)"
    for i, part in enumerate(reversed(fixed)):
        regex = "/" + _component(part, pattern) + (regex if i == 0 else rf"(?:\Z|{regex})")
    return r"\A" + regex if fixed else ""


@dataclass(frozen=True)
class _Run:
    """Consecutive lines of one kind: ``negated`` lines cancel a match."""

    negated: bool
    regex: re.Pattern[str]


def _runs(lines: list[tuple[bool, str]], flags: int) -> list[_Run]:
    """Consecutive lines of one kind as one regex each, the last first."""
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
    return runs[::-1]


class PatternList:
    """A list of pattern lines, restic's way: :meth:`matches` tells whether a path is matched
    (excluded, for an exclude list; restored, for an include list), :meth:`may_hold` whether
    something below a directory may be."""

    def __init__(self, patterns: Iterable[str | bytes], ignore_case: bool = False) -> None:
        self.patterns = [p if isinstance(p, str) else os.fsdecode(p) for p in patterns]
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        lines: list[tuple[bool, str]] = []
        children: list[tuple[bool, str]] = []
        for p in self.patterns:
            if not p:
                continue  # restic skips empty lines
            negated = p.startswith("!")
            anchored, parts = _parts(p[1:] if negated else p, p)
            regex = _regex(anchored, parts, p)
            lines.append((negated, regex))
            # a '!' line that matches the directory itself rules out all below it
            children.append((negated, regex if negated else _child_regex(anchored, parts, p)))
        # negations before any other line cancel nothing
        while lines and lines[0][0]:
            lines.pop(0)
            children.pop(0)
        self._runs = _runs(lines, flags)  # the last line that matches decides
        self._child_runs = _runs(children, flags)

    def __bool__(self) -> bool:
        return bool(self._runs)

    def matches(self, path: bytes | str) -> bool:
        """``path`` is absolute ('/a/b/c'); true if the lines match it."""
        if not self._runs:  # no lines (the usual case: asked of every file a backup reads)
            return False
        text = path if isinstance(path, str) else os.fsdecode(path)
        for run in self._runs:
            if run.regex.search(text) is not None:
                return not run.negated
        return False

    def may_hold(self, path: bytes | str) -> bool:
        """Whether the lines may match something below the directory ``path``."""
        if not self._child_runs:
            return False
        text = path if isinstance(path, str) else os.fsdecode(path)
        for run in self._child_runs:
            if run.regex.search(text) is not None:
                return not run.negated
        return False
