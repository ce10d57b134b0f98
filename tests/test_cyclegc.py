"""Fewer collections of cycles while a backup walks (core/cyclegc.py): raised for the walk,
put back after it, however many walks overlap."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

from cairn.core import cyclegc
from cairn.core.cyclegc import RELAXED_THRESHOLD, fewer_collections
from cairn.ops.backup import archiver


@pytest.fixture
def threshold():  # type: ignore[no-untyped-def]
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_overlapping_walks_put_the_threshold_back_once_all_are_over(threshold) -> None:  # type: ignore[no-untyped-def]
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with fewer_collections():
            inside.set()
            leave.wait(5)

    t = threading.Thread(target=other)
    with fewer_collections():
        assert gc.get_threshold() == (RELAXED_THRESHOLD, 10, 10)
        t.start()
        inside.wait(5)
    assert gc.get_threshold() == (RELAXED_THRESHOLD, 10, 10)  # the other walk still runs
    leave.set()
    t.join()
    assert gc.get_threshold() == (700, 10, 10)
    assert cyclegc._entered == 0


def test_a_collector_turned_off_stays_off(threshold) -> None:  # type: ignore[no-untyped-def]
    gc.set_threshold(0, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)


def test_a_backup_walks_with_fewer_collections(  # type: ignore[no-untyped-def]
    threshold, tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("data\n")
    seen: list[int] = []
    real = archiver.save_tree

    def recording(*args):  # type: ignore[no-untyped-def]
        seen.append(gc.get_threshold()[0])
        return real(*args)

    monkeypatch.setattr(archiver, "save_tree", recording)
    assert run_cli("init", "--repo", tmp_path / "repo").code == 0
    res = run_cli("backup", "--repo", tmp_path / "repo", src)
    assert res.code == 0, res.err
    assert seen and set(seen) == {RELAXED_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)
