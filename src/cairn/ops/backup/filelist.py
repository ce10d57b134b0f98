"""Lists of paths to back up, read from files (restic's ``--files-from`` and its kin).

- ``lines``: one path per line; blank lines and lines starting with ``#`` are left out, and
  space around a path is trimmed (``--files-from``).
- ``verbatim``: every line is a path, as it is, space, ``#`` and all (``--files-from-verbatim``);
  an empty line names nothing and is passed over.
- ``raw``: paths separated by NUL bytes, any other bytes allowed, newlines too
  (``--files-from-raw``, as ``find -print0`` writes them).

``-`` reads standard input. Paths come back as the file system's strings (undecodable bytes as
surrogate escapes), so any name a list holds is backed up.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO

from cairn.core.errors import UsageError

KINDS = ("lines", "verbatim", "raw")


def read_file_list(source: str, kind: str, stdin: BinaryIO | None = None) -> list[str]:
    """The paths the list ``source`` (a file name, or ``-``) holds."""
    if kind not in KINDS:
        raise ValueError(kind)
    try:
        if source == "-":
            data = (stdin if stdin is not None else sys.stdin.buffer).read()
        else:
            with open(source, "rb") as f:
                data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read list of files {source}: {e.strerror}") from None
    if kind == "raw":
        paths = [p for p in data.split(b"\0") if p]
    elif kind == "verbatim":
        paths = [p for p in data.split(b"\n") if p]
    else:
        paths = [p for line in data.splitlines() if (p := line.strip()) and p[:1] != b"#"]
    return [os.fsdecode(p) for p in paths]
