"""Trees and snapshots of a hostile repository: malformed nodes, huge values, trees nested
thousands of levels deep, unsafe and repeated names, entries out of order.

Each is crafted with the repository's own key (tests/craft.py) and read by the real CLI in a
process of limited address space (``run_limited``). No command may end in a traceback or need
unbounded memory; a bad entry is reported naming its tree and itself, and left out, and the
rest of its directory is still restored, listed or dumped; check reports it as damage.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from cairn.model.node import DIR, MAX_DEPTH, Node, decode_listing, is_safe_name
from cairn.repo import layout
from tests.conftest import Result, run_limited
from tests.craft import Crafter, create_repo, open_repo

OK = b"an innocent file next to the attack\n"
ID = b"\x11" * 32

# Node maps that break the schema of docs/format.md §7.2, by what they break
MALFORMED: dict[str, object] = {
    "huge-int-content": {"name": b"m-huge", "type": "file", "size": 1, "content": [2**30]},
    "bigint-content": {"name": b"m-bigint", "type": "file", "content": [2**64 - 1]},
    "str-mode": {"name": b"m-mode", "type": "file", "mode": "rwxrwxrwx"},
    "negative-size": {"name": b"m-size", "type": "file", "size": -1},
    "huge-uid": {"name": b"m-uid", "type": "fifo", "uid": 2**40},
    "float-mtime": {"name": b"m-mtime", "type": "fifo", "mtime": 1.5},
    "time-overflow": {"name": b"m-atime", "type": "fifo", "atime": 2**64 - 1},
    "int-subtree": {"name": b"m-subtree", "type": "dir", "subtree": 5},
    "short-subtree": {"name": b"m-subtree2", "type": "dir", "subtree": b"short"},
    "int-target": {"name": b"m-target", "type": "symlink", "target": 7},
    "nul-target": {"name": b"m-target2", "type": "symlink", "target": b"a\0b"},
    "no-target": {"name": b"m-target3", "type": "symlink"},
    "int-xattr": {"name": b"m-xattr", "type": "file", "xattrs": [[1, 2]]},
    "short-content-id": {"name": b"m-content", "type": "file", "content": [b"short"]},
    "content-on-fifo": {"name": b"m-fifo", "type": "fifo", "content": [ID]},
    "nul-user": {"name": b"m-user", "type": "file", "user": "root\0x"},
    "unknown-type": {"name": b"m-type", "type": "teleporter"},
    "unknown-field": {"name": b"m-field", "type": "file", "evil": 1},
    "int-name": {"name": 42, "type": "file"},
    "no-name": {"type": "file"},
    "not-a-map": "just a string",
    "list-type": {"name": b"m-list", "type": ["file"]},
}


def _assert_reported(res: Result, *expected: str) -> None:
    assert "Traceback" not in res.err and "MemoryError" not in res.err, res.err
    assert res.code != 0, (res.code, res.out[-3000:], res.err[-3000:])
    for text in expected:  # check reports on standard output, the others on standard error
        assert text in res.err + res.out, (text, res.err[-3000:], res.out[-3000:])


@pytest.fixture(scope="module")
def malformed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A snapshot whose directory 'd' holds every malformed node, 'ok.txt' and 'sub/inner'."""
    repo_dir = create_repo(tmp_path_factory.mktemp("malformed") / "repo")
    c = Crafter(open_repo(repo_dir))
    try:
        good = [c.file(b"ok.txt", OK).to_map(), c.dir(b"sub", [c.file(b"inner", OK)]).to_map()]
        maps = sorted(
            [*MALFORMED.values(), *good],
            key=lambda m: (
                m["name"] if isinstance(m, dict) and type(m.get("name")) is bytes else b""
            ),
        )
        d = c.raw_dir(b"d", maps)
        c.snapshot([d])
    finally:
        c.close()
    assert d.subtree is not None
    return repo_dir, d.subtree


@pytest.mark.parametrize("command", ["restore", "ls", "dump", "cat", "check"])
def test_malformed_nodes_are_reported_and_skipped(command, malformed, tmp_path):
    repo_dir, tree = malformed
    target = tmp_path / "target"
    args = {
        "restore": ["restore", "latest", "--target", target],
        "ls": ["ls", "--json", "latest"],
        "dump": ["dump", "latest", "/d", "--target", tmp_path / "d.tar"],
        "cat": ["cat", "--json", "tree", tree.hex()],
        "check": ["check"],
    }[command]
    res = run_limited(*args, "--repo", repo_dir)
    # every bad entry is named (by its name, or its position when it has none)
    named = [
        m["name"].decode()
        for m in MALFORMED.values()
        if isinstance(m, dict) and type(m.get("name")) is bytes
    ]
    _assert_reported(res, tree.hex()[:16], *named, "<entry ")
    if command == "restore":
        assert (target / "d" / "ok.txt").read_bytes() == OK
        assert (target / "d" / "sub" / "inner").read_bytes() == OK
        assert sorted(os.listdir(target / "d")) == ["ok.txt", "sub"]
    elif command == "ls":
        listed = [json.loads(line)["path"] for line in res.out.splitlines()]
        assert listed == ["/d", "/d/ok.txt", "/d/sub", "/d/sub/inner"]
    elif command == "dump":
        with tarfile.open(tmp_path / "d.tar") as tar:
            assert tar.getnames() == ["d", "d/ok.txt", "d/sub", "d/sub/inner"]
    elif command == "cat":
        doc = json.loads(res.out)
        assert [n["name"] for n in doc["nodes"]] == ["ok.txt", "sub"]
        assert len(doc["left_out"]) == len(MALFORMED)


def test_every_schema_violation_has_a_reason():
    """The fast check and the one that says what is wrong agree on every malformed node."""
    from cairn.model.node import TreeFormatError, _plainly_valid, _problem

    for case, m in MALFORMED.items():
        listing = decode_listing(_tree_bytes([m]))
        assert listing.nodes == [] and len(listing.bad) == 1, case
        assert listing.bad[0].reason != "malformed node", case
        if isinstance(m, dict) and {"name", "type"} <= set(m) <= set(Node.__dataclass_fields__):
            node = Node(**m)  # type: ignore[arg-type]
            assert not _plainly_valid(node) and _problem(node), case
    with pytest.raises(TreeFormatError):
        Node.from_map({"name": b"x", "type": "file", "mode": True, "uid": 1.0})


def _tree_bytes(nodes: list[object]) -> bytes:
    import msgpack

    return msgpack.packb({"version": 1, "nodes": nodes}, use_bin_type=True)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A snapshot of 'ok.txt' and a chain of 30,000 directories 'd/d/d/...'."""
    levels = 30_000
    repo_dir = create_repo(tmp_path_factory.mktemp("deep") / "repo", pack_size=8 << 20)
    c = Crafter(open_repo(repo_dir))
    try:
        tree = c.tree([c.file(b"bottom.txt", OK)])
        for _ in range(levels - 1):
            tree = c.tree([Node(name=b"d", type=DIR, mode=0o755, subtree=tree, mtime=c.now)])
        top = Node(name=b"d", type=DIR, mode=0o755, subtree=tree, mtime=c.now)
        c.snapshot([c.file(b"ok.txt", OK), top])
    finally:
        c.close()
    return repo_dir, levels


@pytest.mark.parametrize("command", ["restore", "ls", "dump", "check", "stats"])
def test_a_tree_30000_levels_deep(command, deep, tmp_path, request):
    repo_dir, _levels = deep
    target = tmp_path / "target"
    request.addfinalizer(lambda: _remove_chain(target))
    args = {
        "restore": ["restore", "latest", "--target", target],
        "ls": ["ls", "latest"],
        "dump": ["dump", "latest", "/", "--target", tmp_path / "all.tar"],
        "check": ["check"],
        "stats": ["stats", "latest"],
    }[command]
    res = run_limited(*args, "--repo", repo_dir)
    _assert_reported(res, f"nested deeper than {MAX_DEPTH} levels")
    if command == "restore":
        assert (target / "ok.txt").read_bytes() == OK
        fd = os.open(target, os.O_RDONLY)
        depth = 0
        try:  # the directories down to the limit are restored
            while True:
                nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd, depth = nfd, depth + 1
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
        assert depth == MAX_DEPTH
    elif command == "ls":
        lines = res.out.splitlines()
        assert lines[-1] == "/ok.txt" and len(lines) == MAX_DEPTH + 1


def _remove_chain(top: Path) -> None:
    """Remove a chain of directories 'd/d/d/...' below ``top`` without recursion: the chain is
    shortened by one level at a time (shutil.rmtree, and pytest's clean-up of old temporary
    directories with it, recurses once per level and fails on a chain this deep)."""
    head, spare = top / "d", top / "next"
    while head.exists():
        if (head / "d").exists():
            os.rename(head / "d", spare)
        shutil.rmtree(head)
        if spare.exists():
            os.rename(spare, head)


SNAPSHOT_FIELDS: dict[str, dict[str, object]] = {
    "int-tree": {"tree": 5},
    "short-tree": {"tree": b"short"},
    "str-paths": {"paths": "/etc"},
    "int-in-paths": {"paths": [1, 2]},
    "int-time": {"time": 5},
    "bad-time": {"time": "yesterday"},
    "int-host": {"host": 7},
    "list-parent": {"parent": ["x"]},
    "str-uid": {"uid": "root"},
    "str-summary-count": {"summary": {"files_new": "many"}},
    "int-tags": {"tags": [1]},
}


@pytest.mark.parametrize("case", sorted(SNAPSHOT_FIELDS))
@pytest.mark.parametrize("command", ["snapshots", "ls"])
def test_malformed_snapshot_fields(command, case, tmp_path):
    import msgpack

    from tests.craft import zstd_bomb  # noqa: F401  (same module of crafting helpers)

    repo_dir = create_repo(tmp_path / "repo")
    c = Crafter(open_repo(repo_dir))
    try:
        tree = c.tree([c.file(b"ok.txt", OK)])
        c.flush()
        doc = {
            "time": "2026-01-01T00:00:00+00:00",
            "host": "h",
            "user": "u",
            "paths": [b"/x"],
            "tree": tree,
            "version": 1,
            **SNAPSHOT_FIELDS[case],
        }
        raw = msgpack.packb(doc, use_bin_type=True)
        name = c.raw_object(layout.SNAPSHOTS, b"\x00" + raw)
    finally:
        c.close()
    snap_id = layout.id_of(name)
    args = ["snapshots", "--json"] if command == "snapshots" else ["ls", snap_id]
    res = run_limited(*args, "--repo", repo_dir)
    if command == "snapshots":  # the listing goes on without it, and names it in a warning
        assert "Traceback" not in res.err and res.code == 0, res.err
        assert json.loads(res.out) == [] and f"warning: snapshots/{snap_id}" in res.err
        return
    _assert_reported(res, f"snapshots/{snap_id}")


# Trees with unsafe names and repeated names (tests/test_security.py restores them): dump must
# not put such entries into its tar, where tarfile would extract them outside its directory.
def _unsafe_tree(c: Crafter, outside: bytes) -> list[Node]:
    return [
        c.file(b"ok.txt", OK),
        c.file(b"..", b"pwned"),
        c.dir(b"../outside", [c.file(b"pwn", b"pwned")]),
        c.file(outside + b"/victim", b"pwned"),
        c.symlink(b"x", outside),
        c.dir(b"x", [c.file(b"victim", b"pwned")]),
        c.file(b"f", b"first"),
        c.symlink(b"f", outside + b"/victim"),
    ]


def test_dump_leaves_unsafe_and_repeated_names_out_of_the_tar(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"precious")
    repo_dir = create_repo(tmp_path / "repo")
    c = Crafter(open_repo(repo_dir))
    try:
        c.snapshot([c.dir(b"top", _unsafe_tree(c, os.fsencode(outside)))])
    finally:
        c.close()
    res = run_limited("dump", "--repo", repo_dir, "latest", "/top", "--target", tmp_path / "t.tar")
    _assert_reported(res, "unsafe name", "duplicate name")
    with tarfile.open(tmp_path / "t.tar") as tar:
        names = tar.getnames()
        assert len(names) == len(set(names)), names
        for name in names:
            assert not name.startswith("/") and all(
                is_safe_name(p.encode()) for p in name.split("/")
            ), name
        assert sorted(names) == ["top", "top/f", "top/ok.txt", "top/x"]
        assert tar.getmember("top/x").issym() and tar.getmember("top/f").isfile()
        extract = tmp_path / "extract"
        tar.extractall(extract)
    assert (outside / "victim").read_bytes() == b"precious"
    assert sorted(os.listdir(outside)) == ["victim"]


@pytest.mark.parametrize(
    ("case", "names", "message"),
    [
        ("unsorted", [b"b.txt", b"a.txt"], "entries are not sorted by name"),
        ("duplicate", [b"a.txt", b"a.txt"], "duplicate name"),
        ("unsafe", [b"a.txt", b".."], "unsafe name"),
    ],
)
def test_check_reports_trees_that_break_the_rules(case, names, message, tmp_path):
    repo_dir = create_repo(tmp_path / "repo")
    c = Crafter(open_repo(repo_dir))
    try:
        maps = [c.file(n, OK + n).to_map() for n in names]
        c.snapshot([c.raw_dir(b"d", maps)])
    finally:
        c.close()
    res = run_limited("check", "--repo", repo_dir)
    _assert_reported(res, message, "/d")


def test_restore_target_opens_deep_directories_without_recursion(tmp_path):
    """Directories of a deep tree are opened level by level in a loop: no stack for depth
    (other modules raise the interpreter's recursion limit; this holds under the default)."""
    import sys

    from cairn.ops.safefs import Target

    target = Target(tmp_path / "target")
    try:
        fd = os.dup(target.fd)
        for _ in range(MAX_DEPTH):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.close(fd)
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(1000)
        try:
            deepest = target.dir_fd((b"d",) * MAX_DEPTH)
            middle = target.dir_fd((b"d",) * (MAX_DEPTH // 2))
        finally:
            sys.setrecursionlimit(old)
        assert os.fstat(deepest).st_ino != os.fstat(middle).st_ino
    finally:
        target.close()
        _remove_chain(tmp_path / "target")
    # nothing left deeper than a recursive removal reaches: pytest's clean-up of old temporary
    # directories (shutil.rmtree) would fail on the chain, and end a later session at its start
    assert _depth(tmp_path) < 100


def _depth(top: Path) -> int:
    """How many levels of directories there are below ``top``, counted without recursion."""
    deepest, todo = 0, [(top, 0)]
    while todo:
        path, level = todo.pop()
        deepest = max(deepest, level)
        todo += [
            (Path(e.path), level + 1) for e in os.scandir(path) if e.is_dir(follow_symlinks=False)
        ]
    return deepest
