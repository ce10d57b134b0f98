"""Backups, forget, prune and check side by side (docs/format.md §12): no interleaving loses a
pack a saved snapshot uses, none makes a command fail or cry damage on a healthy repository.

The interleavings are made deterministic where it matters: a prune is held between its steps
by its step callback, and a fault-injecting wrapper around the real store makes a backup stop
after uploading its packs (as kill -9 would) or runs another command at the exact moment a
listing is taken."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn.app.context import StackHooks, StoreOptions, backend_for, stack_hooks, wrap_backend
from cairn.core.errors import StorageError
from cairn.ops.backup.snapshot_writer import BackupRequest, run_backup
from cairn.ops.check import Checker
from cairn.ops.progress import NullProgress
from cairn.ops.prune import PruneOptions, run_prune
from cairn.repo import layout
from cairn.repo.journal import PackJournal
from cairn.repo.locks import HeldLock, Locks, new_lock
from cairn.repo.repository import Repository
from cairn.storage.base import Storage, StorageWrapper
from cairn.storage.faulty import FaultyStorage
from tests.conftest import PASSWORD
from tests.test_prune import cairn, cairn_env, write_files
from tests.treecmp import describe, diff

MIB = 1 << 20


def refusing_index_writes(storage: Storage) -> FaultyStorage:
    """The real store, except that writing an index object fails."""
    faulty = FaultyStorage(storage)
    faulty.fail("write", layout.INDEX, transient=False)
    return faulty


def before_listing(storage: Storage, events: dict[str, Callable[[], object]]) -> FaultyStorage:
    """The real store, running ``events[prefix]`` once before the first listing of each prefix."""
    faulty = FaultyStorage(storage)
    for prefix, event in events.items():
        faulty.before("list", prefix, event)
    return faulty


def open_repo(url: str, wrap: Callable | None = None) -> Repository:  # type: ignore[type-arg]
    storage, _ = wrap_backend(backend_for(url, StoreOptions()), StoreOptions())
    return Repository.open(wrap(storage) if wrap else storage, PASSWORD.encode())


def journal_of(repo: Repository, cache: Path) -> PackJournal:
    return PackJournal(cache / repo.config.id / "pending-packs")


def interrupted_backup(url: str, src: Path, cache: Path) -> list[bytes]:
    """A backup that stores its packs and is stopped before any index object lists them (as
    by kill -9): the packs are left in this machine's pack journal. Returns their ids."""
    repo = open_repo(url, refusing_index_writes)
    journal = journal_of(repo, cache)
    with pytest.raises(StorageError, match="injected"):
        run_backup(repo, BackupRequest(paths=[str(src)]), NullProgress(), None, journal)
    packs = [r.info.id for r in journal.records()]
    assert packs, "the interrupted backup left no pack in the journal"
    return packs


def restores_identically(env: dict[str, str], url: str, src: Path, target: Path) -> None:
    cairn(env, "restore", "--repo", url, f"latest:{src}", "--target", target, "--verify")
    assert diff(describe(src), describe(target)) == []


def every_snapshot_restores(env: dict[str, str], url: str, tmp_path: Path) -> int:
    """Restores each snapshot and compares it with its (unchanged) source tree."""
    snaps = json.loads(cairn(env, "snapshots", "--repo", url, "--json").stdout)
    for snap in snaps:
        src = Path(snap["paths"][0])
        out = tmp_path / f"out-{snap['id'][:8]}"
        cairn(env, "restore", "--repo", url, f"{snap['id']}:{src}", "--target", out, "--verify")
        assert diff(describe(src), describe(out)) == [], snap["id"]
    return len(snaps)


def check_is_clean(env: dict[str, str], url: str) -> dict:  # type: ignore[type-arg]
    res = cairn(env, "check", "--repo", url, "--read-data", "--json", check=False)
    report = json.loads(res.stdout)
    assert res.returncode == 0 and report["ok"], report
    return report  # type: ignore[no-any-return]


def test_the_pack_journal_never_adopts_packs_a_prune_condemned(tmp_path, repo_url, request):
    """A backup killed after uploading leaves journaled packs that no index lists; a prune
    condemns them as orphans; the next backup on that machine must not build on them."""
    s3 = request.getfixturevalue("s3_server") if repo_url.startswith("s3:") else None
    env = cairn_env(tmp_path, s3)
    src = tmp_path / "src"
    write_files(src, ["a", "b", "c"], size=MIB)
    cairn(env, "init", "--repo", repo_url, "--pack-size", "1M")
    orphans = interrupted_backup(repo_url, src, tmp_path / "cache")
    repo = open_repo(repo_url)
    with HeldLock(Locks(repo), new_lock("prune", orphans)):  # the prune, between its steps
        cairn(env, "backup", "--repo", repo_url, src)
        for pack_id in orphans:  # what the prune does next
            repo.storage.delete(layout.pack_name(pack_id.hex()))
    check_is_clean(env, repo_url)
    restores_identically(env, repo_url, src, tmp_path / "out")


class HeldPrune:
    """A prune in a thread, held when it reaches ``at`` until ``release()``."""

    def __init__(self, url: str, at: str, options: PruneOptions | None = None) -> None:
        self.at = at
        self.reached = threading.Event()
        self._go = threading.Event()
        self.report = None
        self.error: BaseException | None = None
        self.steps: list[str] = []
        self._repo = open_repo(url)
        self._options = options or PruneOptions(max_unused=0.01, max_wait=60)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _step(self, name: str, detail: str) -> None:
        self.steps.append(name)
        if name == self.at and not self.reached.is_set():
            self.reached.set()
            assert self._go.wait(120)

    def _run(self) -> None:
        try:
            self.report = run_prune(self._repo, self._options, NullProgress(), self._step)
        except BaseException as e:
            self.error = e
        finally:
            self.reached.set()

    def start(self) -> HeldPrune:
        self._thread.start()
        assert self.reached.wait(120)
        return self

    def release(self):  # type: ignore[no-untyped-def]
        self._go.set()
        self._thread.join(180)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.report


def prunable(tmp_path: Path, url: str, env: dict[str, str]) -> tuple[Path, Path]:
    """A repository with unused data (a forgotten snapshot) and packs an interrupted backup
    left in this machine's journal; returns the source trees of both."""
    old, new = tmp_path / "old", tmp_path / "new"
    write_files(old, [f"o{i}" for i in range(4)], size=MIB)
    write_files(new, [f"n{i}" for i in range(4)], size=MIB)
    cairn(env, "init", "--repo", url, "--pack-size", "1M")
    cairn(env, "backup", "--repo", url, old)
    first = json.loads(cairn(env, "snapshots", "--repo", url, "--json").stdout)[0]["id"]
    cairn(env, "forget", "--repo", url, first)
    interrupted_backup(url, new, tmp_path / "cache")
    return old, new


@pytest.mark.parametrize(
    "step",
    ["planned", "condemned", "looked", "waited", "rescued", "repacked", "indexed", "deleted"],
)
def test_a_backup_that_recovers_its_journal_while_a_prune_is_held_at_each_step(tmp_path, step):
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    _, new = prunable(tmp_path, url, env)
    prune = HeldPrune(url, step).start()
    res = cairn(env, "backup", "--repo", url, new, "--json")
    assert json.loads(res.stdout)["summary"]["files_new"] == 4
    report = prune.release()
    assert report.postponed is None, report
    assert report.packs_deleted + report.orphan_packs > 0  # the forgotten data went
    check_is_clean(env, url)
    restores_identically(env, url, new, tmp_path / "out")
    final = json.loads(cairn(env, "prune", "--repo", url, "--json").stdout)
    assert final["postponed"] is None


def test_a_prune_waits_for_a_backup_that_began_before_its_condemnation(tmp_path):
    """A backup that loaded the index before the prune condemned anything may re-use
    condemned packs: the prune waits for it, then keeps what its snapshot uses."""
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    old, _ = prunable(tmp_path, url, env)
    go = threading.Event()

    def wrap(storage):  # type: ignore[no-untyped-def]
        # the backup holds after loading the index, before its data
        return before_listing(storage, {layout.SNAPSHOTS: lambda: go.wait(120)})

    result: list[object] = []
    backup = threading.Thread(
        target=lambda: result.append(
            run_backup(
                open_repo(url, wrap),
                BackupRequest(paths=[str(old)], host="early"),
                NullProgress(),
                None,
                None,
            )
        )
    )
    backup.start()
    while not any(lk.kind == "backup" for lk in Locks(open_repo(url)).read_all()):
        threading.Event().wait(0.05)
    prune = HeldPrune(url, "waiting").start()  # it condemned the forgotten data and waits
    go.set()
    backup.join(120)
    assert result and result[0].snapshot.summary.bytes_added < MIB  # it re-used that data
    report = prune.release()
    assert report.postponed is None and report.waited > 0
    assert report.packs_rescued > 0
    check_is_clean(env, url)
    every_snapshot_restores(env, url, tmp_path)


def test_a_prune_finishes_while_backups_that_began_after_its_condemnation_run(tmp_path):
    """Backups that start after the packs were condemned never use them: the prune deletes
    while they run, so it makes progress however busy the repository is."""
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    prunable(tmp_path, url, env)
    prune = HeldPrune(url, "looked").start()
    with HeldLock(Locks(open_repo(url)), new_lock("backup")):
        report = prune.release()
        assert report.postponed is None and report.packs_deleted > 0
        assert "waiting" not in prune.steps
    check_is_clean(env, url)


def test_a_prune_postpones_when_a_backup_outlasts_max_wait(tmp_path):
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    prunable(tmp_path, url, env)
    before = {n for n, _ in open_repo(url).storage.list(layout.DATA)}
    repo = open_repo(url)
    with HeldLock(Locks(repo), new_lock("backup")):
        res = cairn(env, "prune", "--repo", url, "--max-wait", "1s", "--json")
    report = json.loads(res.stdout)
    assert "still run" in report["postponed"]
    assert report["packs_repacked"] == 0  # nothing was repacked for a postponed prune
    assert {n for n, _ in open_repo(url).storage.list(layout.DATA)} == before
    assert json.loads(cairn(env, "prune", "--repo", url, "--json").stdout)["postponed"] is None


@pytest.mark.parametrize("seed", range(6))
def test_random_interleavings_of_backups_journals_and_prune(tmp_path, seed):
    """Random steps to hold the prune at, random backups (some interrupted, leaving journaled
    packs; some from other hosts) started while it is held or before: every saved snapshot
    restores, check reads everything back, and a second prune finds nothing missing."""
    rng = random.Random(seed)
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    trees = []
    for t in range(3):
        d = tmp_path / f"t{t}"
        write_files(d, [f"f{t}{i}" for i in range(3)], size=MIB // 2)
        trees.append(d)
    cairn(env, "init", "--repo", url, "--pack-size", "512K")
    for d in trees:
        cairn(env, "backup", "--repo", url, d)
    ids = [s["id"] for s in json.loads(cairn(env, "snapshots", "--repo", url, "--json").stdout)]
    for round_ in range(2):
        step = rng.choice(["planned", "condemned", "waited", "rescued", "indexed"])
        cairn(env, "forget", "--repo", url, ids.pop(rng.randrange(len(ids))))
        if rng.random() < 0.6:  # new data, left in the journal; later backups may store it
            fresh = tmp_path / f"i{round_}"
            write_files(fresh, ["x", "y"], size=MIB // 2)
            interrupted_backup(url, fresh, tmp_path / "cache")
            trees.append(fresh)
        prune = HeldPrune(url, step).start()
        for _ in range(rng.randint(1, 2)):
            host = rng.choice(["here", "other"])
            env_h = env if host == "here" else {**env, "CAIRN_CACHE_DIR": str(tmp_path / "c2")}
            cairn(env_h, "backup", "--repo", url, rng.choice(trees), "--host", host)
        report = prune.release()
        assert report.postponed is None, report
        ids = [s["id"] for s in json.loads(cairn(env, "snapshots", "--repo", url, "--json").stdout)]
    check_is_clean(env, url)
    every_snapshot_restores(env, url, tmp_path)
    assert json.loads(cairn(env, "prune", "--repo", url, "--json").stdout)["postponed"] is None


def test_a_backup_finishing_while_prune_plans_is_neither_damage_nor_lost(
    tmp_path, repo_url, request
):
    """Backups complete between the prune's reads (before its rescue lists snapshots, and
    between snapshots and index): the prune must not call the repository damaged, nor delete
    what the new snapshots use, nor postpone (the rescue lists snapshots before index
    objects, so a snapshot it sees has its index objects seen)."""
    s3 = request.getfixturevalue("s3_server") if repo_url.startswith("s3:") else None
    env = cairn_env(tmp_path, s3)
    old, new1, new2 = tmp_path / "old", tmp_path / "new1", tmp_path / "new2"
    write_files(old, ["a", "b"], size=MIB)
    write_files(new1, ["c"], size=MIB)
    write_files(new2, ["d"], size=MIB)
    cairn(env, "init", "--repo", repo_url, "--pack-size", "1M")
    cairn(env, "backup", "--repo", repo_url, old)
    first = json.loads(cairn(env, "snapshots", "--repo", repo_url, "--json").stdout)[0]["id"]
    cairn(env, "forget", "--repo", repo_url, first)

    def wrap(storage):  # type: ignore[no-untyped-def]
        # whichever the prune reads first, one backup lands between the two reads
        return before_listing(
            storage,
            {
                layout.SNAPSHOTS: lambda: cairn(env, "backup", "--repo", repo_url, new1),
                layout.INDEX: lambda: cairn(env, "backup", "--repo", repo_url, new2),
            },
        )

    report = run_prune(open_repo(repo_url, wrap), PruneOptions(), NullProgress())
    assert report.postponed is None
    assert report.packs_deleted > 0  # the forgotten snapshot's data
    check_is_clean(env, repo_url)
    assert every_snapshot_restores(env, repo_url, tmp_path) == 2


class ListedMidway(StorageWrapper):
    """The real store, whose listings of the whole repository (a prune's first look) see a
    backup that ends while they page on: ``event`` runs as the listing starts, and what it
    added under the prefixes ``hide`` is left out, as if those pages had been listed before
    it wrote them. Counts the listings asked for, by prefix."""

    def __init__(self, inner: Storage, hide: tuple[str, ...], event: Callable[[], object]) -> None:
        super().__init__(inner)
        self.hide, self.event = hide, event
        self.listed: list[str] = []

    def list(self, prefix: str):  # type: ignore[no-untyped-def]
        self.listed.append(prefix)
        if prefix or self.event is None:
            yield from self.inner.list(prefix)
            return
        before = {name for name, _ in self.inner.list("")}
        self.event()
        self.event = None
        for name, size in self.inner.list(""):
            if name in before or not name.startswith(self.hide):
                yield name, size


@pytest.mark.parametrize(
    "hide",
    [
        (layout.DATA,),  # its index object and snapshot listed, its packs not
        (layout.DATA, layout.SNAPSHOTS),  # its index object listed, its packs and snapshot not
        (layout.DATA, layout.INDEX),  # its snapshot listed, its packs and index object not
    ],
)
def test_a_backup_ending_during_the_prunes_one_listing_makes_it_look_again(tmp_path, hide):
    """A prune's first look is one listing of the whole repository, in key order (data/,
    index/, ..., snapshots/): the reverse of the safe order. A backup ending while it pages
    on is seen in part; the prune must notice, list again prefix by prefix, and neither call
    the repository damaged nor lose what the new snapshot uses."""
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    gone, old, new = tmp_path / "gone", tmp_path / "old", tmp_path / "new"
    write_files(gone, ["z"], size=MIB)
    write_files(old, ["a", "b"], size=MIB)
    write_files(new, ["c"], size=MIB)
    cairn(env, "init", "--repo", url, "--pack-size", "1M")
    cairn(env, "backup", "--repo", url, gone)
    first = json.loads(cairn(env, "snapshots", "--repo", url, "--json").stdout)[0]["id"]
    cairn(env, "backup", "--repo", url, old)
    cairn(env, "forget", "--repo", url, first)  # its packs go: the index is written anew
    wrapped: list[ListedMidway] = []

    def wrap(storage):  # type: ignore[no-untyped-def]
        backup = lambda: cairn(env, "backup", "--repo", url, new)  # noqa: E731
        wrapped.append(ListedMidway(storage, hide, backup))
        return wrapped[0]

    report = run_prune(open_repo(url, wrap), PruneOptions(), NullProgress())
    assert report.postponed is None
    assert report.packs_deleted > 0
    listed = wrapped[0].listed
    assert listed[:2] == [layout.KEYS, ""]
    # looked again, in the safe order
    assert listed[2:5] == [layout.SNAPSHOTS, layout.INDEX, layout.DATA], listed
    check_is_clean(env, url)
    assert every_snapshot_restores(env, url, tmp_path) == 2


def test_a_prune_with_nothing_to_do_lists_the_repository_once(tmp_path):
    """The one listing is the prune's whole look when no backup ends meanwhile: the keys
    (opening the repository), then everything, and no listing of a prefix after it."""
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    src = tmp_path / "src"
    write_files(src, ["a"], size=MIB)
    cairn(env, "init", "--repo", url)
    cairn(env, "backup", "--repo", url, src)
    wrapped: list[ListedMidway] = []

    def wrap(storage):  # type: ignore[no-untyped-def]
        wrapped.append(ListedMidway(storage, (), lambda: None))
        return wrapped[0]

    report = run_prune(open_repo(url, wrap), PruneOptions(), NullProgress())
    assert (report.packs_deleted, report.packs_repacked, report.orphan_packs) == (0, 0, 0)
    assert wrapped[0].listed == [layout.KEYS, ""]


def test_a_backup_survives_a_forget_of_its_parent_between_listing_and_reading(tmp_path):
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    src = tmp_path / "src"
    write_files(src, ["a"], size=MIB)
    cairn(env, "init", "--repo", url)
    cairn(env, "backup", "--repo", url, src)
    cairn(env, "backup", "--repo", url, src)
    ids = [s["id"] for s in json.loads(cairn(env, "snapshots", "--repo", url, "--json").stdout)]

    def wrap(storage):  # type: ignore[no-untyped-def]
        def forget() -> None:
            for snap_id in ids:
                storage.delete(layout.snapshot_name(snap_id))

        # another host forgets them after the backup listed them, before it reads one
        faulty = FaultyStorage(storage)
        faulty.before("read", layout.SNAPSHOTS, forget)
        return faulty

    repo = open_repo(url, wrap)
    result = run_backup(repo, BackupRequest(paths=[str(src)]), NullProgress(), None, None)
    assert result.saved and result.snapshot.parent is None
    restores_identically(env, url, src, tmp_path / "out")


def test_check_beside_a_prune_and_a_backup_reports_no_damage(tmp_path, repo_url, request):
    """A prune replaces index objects and deletes packs, and a backup adds a snapshot, while a
    check reads: the check sees the repository as it was and reports no damage."""
    s3 = request.getfixturevalue("s3_server") if repo_url.startswith("s3:") else None
    env = cairn_env(tmp_path, s3)
    src = tmp_path / "src"
    write_files(src, [f"f{i}" for i in range(6)], size=MIB)
    cairn(env, "init", "--repo", repo_url, "--pack-size", "1M")
    cairn(env, "backup", "--repo", repo_url, src)
    for i in range(0, 6, 2):
        (src / f"f{i}").unlink()
    cairn(env, "backup", "--repo", repo_url, src)
    first = json.loads(cairn(env, "snapshots", "--repo", repo_url, "--json").stdout)[0]["id"]
    for prefix in (layout.DATA, layout.INDEX):

        def wrap(storage, prefix=prefix):  # type: ignore[no-untyped-def]
            def meanwhile() -> None:
                write_files(src, [f"g{prefix[0]}"], size=MIB)
                cairn(env, "backup", "--repo", repo_url, src)
                cairn(env, "forget", "--repo", repo_url, "--keep-last", "1")
                cairn(env, "prune", "--repo", repo_url, "--max-unused", "1%")

            return before_listing(storage, {prefix: meanwhile})

        report = Checker(open_repo(repo_url, wrap), NullProgress()).run()
        assert not report.errors, report.findings
    assert first not in {
        s["id"] for s in json.loads(cairn(env, "snapshots", "--repo", repo_url, "--json").stdout)
    }
    check_is_clean(env, repo_url)


@pytest.mark.parametrize("command", ["restore", "ls", "dump"])
def test_reading_the_latest_snapshot_while_a_backup_finishes(tmp_path, run_cli, command):
    """A backup finishes just before a reader lists the snapshots: `latest` is the new one,
    and the reader must know the index objects that snapshot's blobs are in."""
    url = str(tmp_path / "repo")
    env = cairn_env(tmp_path)
    old, new = tmp_path / "old", tmp_path / "new"
    write_files(old, ["a"], size=MIB)
    write_files(new, ["b"], size=MIB)
    cairn(env, "init", "--repo", url)
    cairn(env, "backup", "--repo", url, old)

    def backup_first(backend: Storage) -> Storage:
        return before_listing(
            backend, {layout.SNAPSHOTS: lambda: cairn(env, "backup", "--repo", url, new)}
        )

    out = tmp_path / "out"
    args = {
        "restore": ("restore", "--repo", url, f"latest:{new}", "--target", out),
        "ls": ("ls", "--repo", url, "latest"),
        "dump": ("dump", "--repo", url, "latest", f"{new}/b", "-o", out),
    }[command]
    with stack_hooks(StackHooks(wrappers=(backup_first,))):
        res = run_cli(*args)
    assert res.code == 0, res.err
    if command == "restore":
        assert diff(describe(new), describe(out)) == []
    elif command == "ls":
        assert str(new / "b") in res.out
    else:
        assert out.read_bytes() == (new / "b").read_bytes()
