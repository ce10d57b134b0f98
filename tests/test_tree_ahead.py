"""Reading trees ahead of a walk (cairn.ops.treefetch): the same walk, its trees read before it
asks for them, within the budget, never an excluded directory's, and a damaged tree reported as
the walk itself reports it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cairn.ops.excludes import PathMatcher
from cairn.ops.restore import Planner, Selection
from cairn.ops.treefetch import TreeAhead
from cairn.ops.treewalk import walk, walk_ahead
from cairn.repo.repository import Repository
from cairn.storage.faulty import FaultyStorage
from cairn.storage.local import LocalStorage
from tests.craft import PASSWORD, create_repo, files_below, flip_bit, locate, only_snapshot


class Counting(TreeAhead):
    """Counts the trees the walk found read ahead, and the ones it had to read itself."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.found = self.missed = 0
        self.started: list[bytes] = []

    def ahead(self, path, nodes):  # type: ignore[no-untyped-def]
        before = set(self._ahead)
        super().ahead(path, nodes)
        self.started += [t for t in self._ahead if t not in before]

    def load(self, tree_id: bytes) -> bytes:
        if tree_id in self._ahead:
            self.found += 1
        else:
            self.missed += 1
        return super().load(tree_id)


@pytest.fixture
def tree_repo(tmp_path: Path, run_cli):  # type: ignore[no-untyped-def]
    """40 directories over three levels, a file in each."""
    src = tmp_path / "src"
    for a in range(4):
        for b in range(3):
            for c in range(2):
                d = src / f"a{a}" / f"b{b}" / f"c{c}"
                d.mkdir(parents=True)
                (d / "f.txt").write_text(f"{a} {b} {c}\n")
    repo_dir = create_repo(tmp_path / "repo")
    assert run_cli("backup", "--repo", repo_dir, src).code == 0
    storage = FaultyStorage(LocalStorage(repo_dir))
    repo = Repository.open(storage, PASSWORD)
    repo.load_index()
    return repo_dir, repo, storage, src


def _top(repo: Repository, src: Path) -> bytes:
    from cairn.ops.snapshots import find_node

    node = find_node(repo, only_snapshot(repo), str(src))
    assert node.subtree is not None
    return node.subtree


def test_the_walk_is_the_same_and_finds_its_trees_read_ahead(tree_repo) -> None:  # type: ignore[no-untyped-def]
    _, repo, _, src = tree_repo
    top = _top(repo, src)
    plain = list(walk(repo, top))
    with Counting(repo, threads=4) as ahead:
        walked = list(walk(repo, top, ahead=ahead))
    assert walked == plain
    dirs = sum(1 for _, n in plain if n.type == "dir")
    assert dirs == 4 + 12 + 24
    assert ahead.found == dirs and ahead.missed == 1  # only the top tree is read by the walk
    assert list(walk_ahead(repo, top, threads=3)) == plain


def test_what_is_read_ahead_stays_within_the_budget(tree_repo) -> None:  # type: ignore[no-untyped-def]
    _, repo, _, src = tree_repo
    top = _top(repo, src)
    plain = list(walk(repo, top))
    one = repo.index.get(top)
    assert one is not None
    with Counting(repo, threads=4, budget=0) as ahead:
        assert list(walk(repo, top, ahead=ahead)) == plain
    assert ahead.found == 0 and not ahead.started
    # room for about two trees: some found, the rest read by the walk, nothing lost
    with Counting(repo, threads=4, budget=2 * one.raw_length) as ahead:
        assert list(walk(repo, top, ahead=ahead)) == plain
    assert 0 < ahead.found < 40 and ahead.found + ahead.missed == 41
    assert ahead._held == 0


def test_an_excluded_directory_is_not_read_ahead(tree_repo) -> None:  # type: ignore[no-untyped-def]
    _, repo, storage, src = tree_repo
    snap = only_snapshot(repo)
    nodes = files_below(repo, snap, src)
    excluded = {nodes[p].subtree for p in nodes if p.startswith("a1") and nodes[p].type == "dir"}
    excluded.add(nodes["a1"].subtree)
    selection = Selection(exclude=PathMatcher(["a1"]))
    start = len(storage.log)
    planner = Planner(repo, selection, tree_threads=4)
    entries = [e.path for e in planner.plan(snap, str(src))]
    assert entries == [e.path for e in Planner(repo, selection).plan(snap, str(src))]
    assert not any(p.startswith(str(src).encode() + b"/a1") for p in entries)
    read = {(c.name, c.offset) for c in storage.log[start:] if c.op in ("read", "read_into")}
    places = {(p.pack_name, p.offset) for p in (locate(repo, t) for t in excluded if t)}
    assert len(places) == 1 + 3 + 6
    assert not read & places, "an excluded directory's tree was read"
    kept = nodes["a2/b1"].subtree
    assert kept is not None
    assert (locate(repo, kept).pack_name, locate(repo, kept).offset) in read


def test_a_damaged_tree_read_ahead_is_reported_as_the_walk_reports_it(tree_repo) -> None:  # type: ignore[no-untyped-def]
    repo_dir, repo, _, src = tree_repo
    snap = only_snapshot(repo)
    nodes = files_below(repo, snap, src)
    damaged = nodes["a2/b1"].subtree
    assert damaged is not None
    place = locate(repo, damaged)
    flip_bit(repo_dir / place.pack_name, place.offset + place.length // 2)
    top = _top(repo, src)

    def problems(threads: int) -> tuple[list[str], list[bytes]]:
        seen: list[str] = []
        found = [
            p
            for p, _ in walk_ahead(repo, top, b"", lambda t: seen.append(t.describe()), 1, threads)
        ]
        return seen, found

    plain = problems(0)
    assert len(plain[0]) == 1 and damaged.hex()[:16] in plain[0][0]
    assert problems(4) == plain


def test_a_walk_left_early_stops_its_threads(tree_repo) -> None:  # type: ignore[no-untyped-def]
    _, repo, _, src = tree_repo
    before = {t.name for t in threading.enumerate()}
    walked = walk_ahead(repo, _top(repo, src), threads=4)
    next(walked)
    next(walked)
    walked.close()
    left = {t.name for t in threading.enumerate()} - before
    assert not any(n.startswith("cairn-trees") for n in left)
