"""Reading a TOML file with the line of every key, and checked access to its tables.

tomllib gives values but no positions, so the source text is scanned a second time for table
headers and ``key =`` lines (skipping strings, comments and multi-line arrays): a key path maps
to the line where it is defined. A key defined inside an inline table or an array is reported
at the line of the nearest enclosing key that has one.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cairn.core.errors import ConfigError

KeyPath = tuple[str | int, ...]
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
    list: "an array",
    dict: "a table",
}


def type_name(value: object) -> str:
    for t in (bool, int, float, str, list, dict):
        if isinstance(value, t):
            return _TYPE_NAMES[t]
    return "a date or time"


def show_key(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
            out += ("." if out else "") + text
    return out


@dataclass
class Document:
    """A parsed file: its data and where each key is."""

    file: str
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, file: str, text: str) -> Document:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column \d+\)", str(e))
            where = f"{file}:{m.group(1)}" if m else file
            message = re.sub(
                r"\s*\(at line \d+, column \d+\)|\s*\(at end of document\)", "", str(e)
            )
            raise ConfigError(f"{where}: invalid TOML: {message}") from None
        return cls(file, data, locate_keys(text))

    def line_of(self, path: KeyPath) -> int | None:
        for n in range(len(path), 0, -1):
            line = self.lines.get(path[:n])
            if line is not None:
                return line
        return None

    def error(self, path: KeyPath, message: str) -> ConfigError:
        line = self.line_of(path)
        where = f"{self.file}:{line}" if line else self.file
        key = show_key(path)
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def root(self) -> Table:
        return Table(self, self.data, ())


class Table:
    """Typed access to one table; ``done()`` rejects the keys that were never asked for."""

    def __init__(self, doc: Document, data: dict[str, Any], path: KeyPath) -> None:
        self.doc = doc
        self.data = data
        self.path = path
        self._seen: set[str] = set()

    def error(self, key: str | None, message: str) -> ConfigError:
        return self.doc.error((*self.path, key) if key is not None else self.path, message)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(
        self, key: str, kind: type | tuple[type, ...], what: str, required: bool = False
    ) -> Any:
        """The value of ``key`` if it is of type ``kind`` (described as ``what``), or None."""
        self._seen.add(key)
        if key not in self.data:
            if required:
                raise self.error(None, f"missing key {key!r}")
            return None
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise self.error(key, f"expected {what}, got {type_name(value)}")
        return value

    def str(self, key: str, required: bool = False) -> str | None:
        value = self.get(key, str, "a string", required)
        if value is not None and not value:
            raise self.error(key, "must not be empty")
        return value  # type: ignore[no-any-return]

    def int(self, key: str, minimum: int = 0, maximum: int | None = None) -> int | None:
        value = self.get(key, int, "an integer", False)
        if value is not None and (value < minimum or (maximum is not None and value > maximum)):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise self.error(key, f"must be {bound}, not {value}")
        return value  # type: ignore[no-any-return]

    def bool(self, key: str, default: bool = False) -> bool:
        value = self.get(key, bool, "true or false", False)
        return default if value is None else bool(value)

    def str_list(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self.get(key, list, "an array of strings", required)
        if value is None:
            return ()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.doc.error(
                    (*self.path, key, i), f"expected a string, got {type_name(item)}"
                )
            if not item:
                raise self.doc.error((*self.path, key, i), "must not be empty")
        return tuple(value)

    def table(self, key: str, required: bool = False) -> Table | None:
        value = self.get(key, dict, "a table", required)
        return None if value is None else Table(self.doc, value, (*self.path, key))

    def tables(self, key: str) -> Iterator[tuple[str, Table]]:
        """The sub-tables of ``[key.NAME]`` sections, in file order."""
        outer = self.table(key)
        if outer is None:
            return
        for name in list(outer.data):
            sub = outer.table(name)
            assert sub is not None
            yield name, sub
        outer.done()

    def allow(self, *keys: str) -> None:
        """Rejects any other key now, before a typo turns into a confusing later error."""
        self._check(set(keys))

    def done(self) -> None:
        self._check(self._seen)

    def _check(self, known: set[str]) -> None:
        for key in self.data:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(key, f"unknown key{hint}")


# ---------------------------------------------------------------------- key positions
def locate_keys(text: str) -> dict[KeyPath, int]:
    """Every table header and ``key = value`` of a TOML text -> its 1-based line."""
    lines: dict[KeyPath, int] = {}
    arrays: dict[KeyPath, int] = {}  # array-of-tables path -> elements seen so far
    table: KeyPath = ()
    scanner = _ValueScanner()
    for no, line in enumerate(text.splitlines(), 1):
        if scanner.open:
            scanner.feed(line)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            is_array = stripped.startswith("[[")
            keys, _ = _parse_key(stripped, 2 if is_array else 1)
            if keys is None:
                continue
            table = _resolve(keys, arrays, new_element=is_array)
            for n in range(1, len(table) + 1):
                lines.setdefault(table[:n], no)
            continue
        keys, end = _parse_key(line, 0)
        if keys is None or end >= len(line) or line[end] != "=":
            continue
        path = (*table, *keys)
        for n in range(len(table) + 1, len(path) + 1):
            lines.setdefault(path[:n], no)
        scanner.feed(line[end + 1 :])
    return lines


def _resolve(keys: list[str], arrays: dict[KeyPath, int], new_element: bool) -> KeyPath:
    path: KeyPath = ()
    for i, key in enumerate(keys):
        path = (*path, key)
        if new_element and i == len(keys) - 1:
            arrays[path] = arrays.get(path, 0) + 1
        if path in arrays:
            path = (*path, arrays[path] - 1)
    return path


def _parse_key(line: str, pos: int) -> tuple[list[str] | None, int]:
    """A dotted key starting at ``pos``: its parts and the position after it (and spaces)."""
    keys = []
    n = len(line)
    while True:
        while pos < n and line[pos] in " \t":
            pos += 1
        if pos < n and line[pos] in "\"'":
            quote = line[pos]
            end = pos + 1
            while end < n and line[end] != quote:
                end += 2 if quote == '"' and line[end] == "\\" else 1
            if end >= n:
                return None, pos
            try:
                keys.append(next(iter(tomllib.loads(line[pos : end + 1] + " = 0"))))
            except tomllib.TOMLDecodeError:
                return None, pos
            pos = end + 1
        else:
            m = _BARE.match(line, pos)
            if not m:
                return None, pos
            keys.append(m.group())
            pos = m.end()
        while pos < n and line[pos] in " \t":
            pos += 1
        if pos < n and line[pos] == ".":
            pos += 1
            continue
        return keys, pos


class _ValueScanner:
    """Follows a value across lines: multi-line strings and arrays keep it open."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string: str | None = None  # '"""' or "'''" while inside one

    @property
    def open(self) -> bool:
        return self.depth > 0 or self.in_string is not None

    def feed(self, line: str) -> None:
        i, n = 0, len(line)
        while i < n:
            if self.in_string is not None:
                end = self._find_close(line, i, self.in_string)
                if end < 0:
                    return
                self.in_string, i = None, end
                continue
            c = line[i]
            if c == "#":
                return
            if line.startswith(('"""', "'''"), i):
                self.in_string, i = line[i : i + 3], i + 3
            elif c in "\"'":
                end = self._find_close(line, i + 1, c)
                i = n if end < 0 else end
            else:
                if c in "[{":
                    self.depth += 1
                elif c in "]}":
                    self.depth = max(0, self.depth - 1)
                i += 1

    @staticmethod
    def _find_close(line: str, i: int, quote: str) -> int:
        """The position after the closing ``quote`` (``\\`` escapes in basic strings), or -1."""
        n = len(line)
        while i < n:
            if quote[0] == '"' and line[i] == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                end = i + len(quote)
                while len(quote) == 3 and end < n and line[end] == quote[0]:
                    end += 1  # up to two quotes may end the content of a multi-line string
                return end
            i += 1
        return -1
