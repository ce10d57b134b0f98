"""The pack journal: what it holds after any sequence of appends, forgets and clears, by this
journal or by another on the same file (another process's backup with the same cache)."""

from __future__ import annotations

import os
from array import array
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cairn.repo import journal as journal_module
from cairn.repo.index import PackColumns, PackInfo, PackRecord
from cairn.repo.journal import PackJournal


def pack(n: int, blobs: int) -> PackColumns:
    ids = b"".join(bytes([n, k]) * 16 for k in range(blobs))
    return PackColumns(
        PackInfo(bytes([n]) * 32, bytes([n]) * 32, 0), ids, array("I", range(3 * blobs))
    )


def held(journal: PackJournal) -> list[PackRecord]:
    """The packs the journal holds (a pack appended twice counts once)."""
    return sorted({r.info.id: r for r in journal.records()}.values(), key=lambda r: r.info.id)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 1), st.integers(0, 11)),
        st.tuples(st.just("forget"), st.integers(0, 1), st.sets(st.integers(0, 11))),
        st.tuples(st.just("clear"), st.integers(0, 1), st.none()),
    ),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(ops)
# another journal clears the file and appends an entry as long as the one this journal held:
# the file's size alone would have it rewrite the file from its stale entries
@example(
    [
        ("append", 0, 1),
        ("forget", 1, set()),
        ("clear", 0, None),
        ("append", 0, 7),
        ("forget", 1, set()),
    ]
)
def test_the_journal_holds_what_was_appended_and_not_forgotten(tmp_path_factory, ops) -> None:  # type: ignore[no-untyped-def]
    path = Path(tmp_path_factory.mktemp("j")) / "cache" / "pending-packs"
    journals = [PackJournal(path), PackJournal(path)]
    journals[0].clear()  # as a writer starts
    model: dict[bytes, PackRecord] = {}
    for what, who, arg in ops:
        journal = journals[who]
        if what == "append":
            p = pack(arg, 1 + arg % 3)
            journal.append(p if arg % 2 else p.record())
            model[p.info.id] = p.record()
        elif what == "forget":
            gone = [pack(n, 1 + n % 3) for n in arg]
            journal.forget(gone)
            for p in gone:
                model.pop(p.info.id, None)
        else:
            journal.clear()
            model.clear()
        assert held(journal) == sorted(model.values(), key=lambda r: r.info.id)
        assert not path.exists() or model  # an empty journal is no file


def test_forgetting_what_it_appended_decodes_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    journal = PackJournal(tmp_path / "pending-packs")
    journal.clear()
    for n in range(4):
        journal.append(pack(n, 3))
    monkeypatch.setattr(
        journal_module, "_decode", lambda data: (_ for _ in ()).throw(AssertionError)
    )
    journal.forget([pack(0, 3), pack(2, 3)])
    monkeypatch.undo()
    assert [r.info.id[0] for r in held(journal)] == [1, 3]
    # a foreign entry appended meanwhile: the file is read, and the entry kept
    PackJournal(journal.path).append(pack(7, 1))
    journal.forget([pack(1, 3)])
    assert [r.info.id[0] for r in held(journal)] == [3, 7]
    assert os.path.getsize(journal.path) > 0
