"""Checks that a restored tree equals the source: names, types, modes, sizes, content, links."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def fingerprint(root: Path) -> dict[str, tuple[int, int, str]]:
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.blake2b()
                with open(p, "rb") as f:
                    while b := f.read(1 << 20):
                        h.update(b)
                digest = h.hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            else:
                digest = ""
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            out[rel] = (st.st_mode, size, digest)
    return out


def same_tree(expected: dict[str, tuple[int, int, str]], restored: Path) -> list[str]:
    got = fingerprint(restored)
    problems = [f"missing {k}" for k in expected.keys() - got.keys()]
    problems += [f"extra {k}" for k in got.keys() - expected.keys()]
    problems += [f"differs {k}" for k in expected.keys() & got.keys() if expected[k] != got[k]]
    return sorted(problems)
