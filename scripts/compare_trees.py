"""Compares two trees: content, type, mode, owner, size, mtime, link targets, xattrs, hardlinks."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.treecmp import describe, diff  # noqa: E402

problems = diff(describe(sys.argv[1], atime=False), describe(sys.argv[2], atime=False))
for p in problems:
    print("DIFFERENT:", p)
sys.exit(1 if problems else 0)
