"""Names as human output shows them: never raw control characters.

File names, snapshot paths, tags, hosts and user names come from backed-up systems and from the
repository, and may hold anything: ESC sequences that recolour or retitle the terminal, a
carriage return that overwrites the line, bytes that are not UTF-8. ``printable`` shows them the
way ``ls --escape`` does, with backslash escapes: ``\\n``, ``\\t``, ``\\r``, ``\\xNN`` for other
control characters and for bytes that are not UTF-8, ``\\u0085`` for the C1 controls (so that
``\\xNN`` always means that byte), and ``\\\\`` for a backslash itself, so that every shown name
maps back to exactly one name. JSON output needs none of it: it escapes by itself.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the surrogates that stand for undecodable bytes (or that a
# JSON string may hold alone)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_OR_BACKSLASH = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\\\\]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(name: str | bytes) -> str:
    """A name (path, tag, host, ...) for human output; see the module's description."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    return _CONTROL_OR_BACKSLASH.sub(_escape, name)


def safe_text(text: str, keep: str = "") -> str:
    """Human text about to be written, made safe for a terminal: control characters (but those
    in ``keep``) and undecodable bytes escaped as ``printable`` escapes them. Backslashes stay,
    so text whose names went through ``printable`` comes out unchanged."""
    if not _CONTROL.search(text):
        return text
    if keep:
        return keep[0].join(safe_text(part, keep[1:]) for part in text.split(keep[0]))
    return _CONTROL.sub(_escape, text)
