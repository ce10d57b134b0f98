"""A malicious repository must not make restore write outside its target.

Snapshots are crafted through the Python API with the repository's own key (what an attacker who
knows the password, or who controls a host that backs up into the repository, can do): names
like '..', '.', 'a/b', absolute paths, '' and names with NUL; symlinks that point outside the
target followed by a directory or file of the same name; hardlink groups whose first member is
replaced by such a symlink. Each is restored into a fresh target inside a sandbox that also holds
an 'outside' directory; nothing in the sandbox but the target may change, and unsafe or
malformed trees must be reported (non-zero exit).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.craft import Crafter, create_repo, listing, open_repo, regular_files

VICTIM = b"precious data that must never change\n"
OK = b"an innocent file next to the attack\n"


@dataclass
class Sandbox:
    root: Path
    outside: Path
    target: Path

    @property
    def victim(self) -> Path:
        return self.outside / "victim"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    root = tmp_path / "sandbox"
    outside = root / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "victim").write_bytes(VICTIM)
    (outside / "dir" / "inner").write_bytes(VICTIM)
    (root / "beside-target").write_bytes(VICTIM)
    target = root / "target"
    target.mkdir()  # created up front, so restoring does not change the sandbox directory itself
    return Sandbox(root, outside, target)


Build = Callable[[Crafter, Sandbox], list]  # type: ignore[type-arg]


def _abs(p: Path) -> bytes:
    return os.fsencode(p)


# Each case: the nodes of the crafted root tree. Every case also holds 'ok.txt', which must be
# restored, so a case cannot pass just because restore gave up before doing anything.
UNSAFE: dict[str, Build] = {
    "dotdot-file": lambda c, s: [c.file(b"..", b"pwned by ..")],
    "dotdot-dir": lambda c, s: [c.dir(b"..", [c.file(b"pwn-dotdot", b"pwned")])],
    "dotdot-dir-nested": lambda c, s: [
        c.dir(b"..", [c.dir(b"outside", [c.file(b"victim", b"pwned")])])
    ],
    "dot-file": lambda c, s: [c.file(b".", b"pwned by .")],
    "dot-dir": lambda c, s: [c.dir(b".", [c.file(b"pwn-dot", b"pwned")])],
    "slash-relative": lambda c, s: [c.file(b"../outside/victim", b"pwned")],
    "slash-inside": lambda c, s: [c.dir(b"a", []), c.file(b"a/b", b"slash in a name")],
    "slash-dir": lambda c, s: [c.dir(b"../outside", [c.file(b"pwn-slashdir", b"pwned")])],
    "absolute-file": lambda c, s: [c.file(_abs(s.victim), b"pwned"), c.file(b"/pwn-abs", b"x")],
    "absolute-dir": lambda c, s: [c.dir(_abs(s.outside), [c.file(b"pwn-absdir", b"pwned")])],
    "empty-file": lambda c, s: [c.file(b"", b"pwned by empty")],
    "empty-dir": lambda c, s: [c.dir(b"", [c.file(b"pwn-empty", b"pwned")])],
    "nul-file": lambda c, s: [c.file(b"pwn\0../x", b"pwned"), c.file(b"\0", b"pwned")],
    "nul-dir": lambda c, s: [c.dir(b"d\0", [c.file(b"pwn-nul", b"pwned")])],
    "unsafe-deep": lambda c, s: [c.dir(b"deep", [c.dir(b"er", [c.file(b"..", b"pwned")])])],
}

# Duplicate names in one tree (a valid tree has each name once, sorted): a symlink that points
# outside, then a directory or file of the same name, and the other way round.
DUPLICATES: dict[str, Build] = {
    "symlink-then-dir-absolute": lambda c, s: [
        c.symlink(b"x", _abs(s.outside)),
        c.dir(b"x", [c.file(b"pwn-x", b"pwned"), c.file(b"victim", b"pwned")]),
    ],
    "symlink-then-dir-relative": lambda c, s: [
        c.symlink(b"x", b"../outside"),
        c.dir(b"x", [c.file(b"victim", b"pwned")]),
    ],
    "dir-then-symlink": lambda c, s: [
        c.dir(b"x", [c.file(b"victim", b"pwned")]),
        c.symlink(b"x", _abs(s.outside)),
    ],
    "symlink-then-file": lambda c, s: [
        c.symlink(b"f", _abs(s.victim)),
        c.file(b"f", b"pwned through a symlink"),
    ],
    "file-then-symlink": lambda c, s: [
        c.file(b"f", b"pwned through a symlink"),
        c.symlink(b"f", _abs(s.victim)),
    ],
    "symlink-then-fifo": lambda c, s: [
        c.symlink(b"p", _abs(s.victim)),
        _fifo(c, b"p"),
    ],
    "nested-symlink-then-dir": lambda c, s: [
        c.dir(b"d", [c.symlink(b"e", b"../../outside")]),
        c.dir(b"d", [c.dir(b"e", [c.file(b"victim", b"pwned")])]),
    ],
    "hardlink-first-replaced-by-symlink": lambda c, s: [
        c.file(b"a", b"pwned", links=2, inode=4242, dev=7),
        c.symlink(b"a", _abs(s.victim)),
        c.file(b"b", b"pwned", links=2, inode=4242, dev=7),
    ],
    "hardlink-group-across-dirs": lambda c, s: [
        c.dir(b"d", [c.file(b"a", b"pwned", links=3, inode=99, dev=7)]),
        c.symlink(b"d", _abs(s.outside)),
        c.file(b"z", b"pwned", links=3, inode=99, dev=7),
        c.dir(b"zz", [c.file(b"victim", b"pwned", links=3, inode=99, dev=7)]),
    ],
}


def _fifo(c: Crafter, name: bytes):  # type: ignore[no-untyped-def]
    from cairn.model.node import FIFO, Node

    return Node(name=name, type=FIFO, mode=0o666, mtime=c.now)


def _craft(repo_dir: Path, sandbox: Sandbox, build: Build) -> str:
    crafter = Crafter(open_repo(repo_dir))
    try:
        nodes = build(crafter, sandbox)
        return crafter.snapshot([crafter.file(b"ok.txt", OK), *nodes])
    finally:
        crafter.close()


def _restore_and_check(run_cli, tmp_path: Path, sandbox: Sandbox, build: Build, ref_suffix=""):  # type: ignore[no-untyped-def]
    repo_dir = create_repo(tmp_path / "repo")
    snap_id = _craft(repo_dir, sandbox, build)
    before = listing(sandbox.root, exclude=[sandbox.target])
    res = run_cli("restore", "--repo", repo_dir, snap_id + ref_suffix, "--target", sandbox.target)
    after = listing(sandbox.root, exclude=[sandbox.target])
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == [], f"restore changed things outside its target: {changed}\n{res.err}"
    assert sandbox.victim.read_bytes() == VICTIM
    # The target holds nothing but what restore created: no entry resolves outside it.
    for dirpath, dirnames, filenames in os.walk(sandbox.target):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            if p.is_symlink():
                continue
            assert p.resolve().is_relative_to(sandbox.target.resolve()), p
    return res


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_names_are_refused(case, tmp_path, sandbox, run_cli):
    res = _restore_and_check(run_cli, tmp_path, sandbox, UNSAFE[case])
    assert res.code == 1, (res.code, res.err)
    assert any(w in res.err.lower() for w in ("unsafe", "invalid", "refus")), res.err
    # The rest of the snapshot is still restored.
    assert (sandbox.target / "ok.txt").read_bytes() == OK
    assert b"pwned" not in b"".join(regular_files(sandbox.target).values())


@pytest.mark.parametrize("case", sorted(DUPLICATES))
def test_duplicate_names_do_not_escape_and_are_reported(case, tmp_path, sandbox, run_cli):
    res = _restore_and_check(run_cli, tmp_path, sandbox, DUPLICATES[case])
    assert (sandbox.target / "ok.txt").read_bytes() == OK
    # A tree lists every name once; two entries of one name are a malformed (or malicious)
    # tree, which restore must report rather than silently pick one of them.
    assert res.code != 0, f"duplicate names restored without an error:\n{res.out}{res.err}"


def test_restoring_an_unsafe_subpath_is_refused(tmp_path, sandbox, run_cli):
    """`restore ID:/..` selects the node named '..' itself: its name must still be checked."""

    def build(c: Crafter, s: Sandbox) -> list:  # type: ignore[type-arg]
        return [c.file(b"..", b"pwned by subpath"), c.symlink(b"...", b"..")]

    res = _restore_and_check(run_cli, tmp_path, sandbox, build, ref_suffix=":/..")
    assert res.code != 0, res.err
    assert list(sandbox.target.iterdir()) == []


def test_target_with_planted_links_is_not_followed(tmp_path, sandbox, run_cli):
    """Symlinks and hardlinks already in the target are replaced, never written through."""
    (sandbox.outside / "linked").write_bytes(VICTIM)
    os.symlink(sandbox.outside, sandbox.target / "x")
    os.symlink(sandbox.victim, sandbox.target / "f")
    os.symlink("../outside/victim", sandbox.target / "rel")
    os.link(sandbox.outside / "linked", sandbox.target / "h")
    linked_before = os.stat(sandbox.outside / "linked")

    def build(c: Crafter, s: Sandbox) -> list:  # type: ignore[type-arg]
        return [
            c.dir(b"x", [c.file(b"victim", b"pwned x"), c.file(b"new", b"pwned new")]),
            c.file(b"f", b"pwned f"),
            c.file(b"rel", b"pwned rel"),
            c.file(b"h", b"pwned h"),
        ]

    repo_dir = create_repo(tmp_path / "repo")
    snap_id = _craft(repo_dir, sandbox, build)
    before = listing(sandbox.root, exclude=[sandbox.target, sandbox.outside / "linked"])
    res = run_cli("restore", "--repo", repo_dir, snap_id, "--target", sandbox.target)
    after = listing(sandbox.root, exclude=[sandbox.target, sandbox.outside / "linked"])
    assert res.code == 0, res.err
    assert before == after
    assert sandbox.victim.read_bytes() == VICTIM
    linked = os.stat(sandbox.outside / "linked")
    assert (sandbox.outside / "linked").read_bytes() == VICTIM
    assert (linked.st_mode, linked.st_uid, linked.st_mtime_ns) == (
        linked_before.st_mode,
        linked_before.st_uid,
        linked_before.st_mtime_ns,
    )
    t = sandbox.target
    assert not (t / "x").is_symlink() and (t / "x" / "victim").read_bytes() == b"pwned x"
    assert not (t / "f").is_symlink() and (t / "f").read_bytes() == b"pwned f"
    assert not (t / "rel").is_symlink() and (t / "rel").read_bytes() == b"pwned rel"
    assert (t / "h").read_bytes() == b"pwned h"
    assert os.stat(t / "h").st_ino != linked.st_ino
