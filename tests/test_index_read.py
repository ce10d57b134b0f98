"""Loading the index from an object store: index objects are downloaded several at a time,
but decoded one at a time (decoding holds a Python object per blob of its object)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from cairn.repo import repository as repository_module
from cairn.repo.index import PackInfo, PackRecord
from cairn.repo.pack import BlobRef
from cairn.repo.repository import Repository
from cairn.storage.local import LocalStorage
from tests.craft import PASSWORD, create_repo, open_repo
from tests.test_check_ahead import SlowReads


def test_downloads_overlap_decoding_does_not(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path = create_repo(tmp_path / "repo")
    records = [
        PackRecord(
            PackInfo(os.urandom(32), os.urandom(32), 0),
            [BlobRef(os.urandom(32), 40 + 10 * k, 10, 9) for k in range(3)],
        )
        for _ in range(16)
    ]
    open_repo(path, load_index=False).write_index(records, per_object=1)
    store = SlowReads(LocalStorage(path))
    repo = Repository.open(store, PASSWORD)
    repo.request_threads = 4
    real = repository_module.decode_index_columns
    guard = threading.Lock()
    decoding = most = 0

    def slow_decode(data: bytes):  # type: ignore[no-untyped-def]
        nonlocal decoding, most
        with guard:
            decoding += 1
            most = max(most, decoding)
        try:
            time.sleep(0.01)  # room for another thread to start decoding meanwhile
            return real(data)
        finally:
            with guard:
                decoding -= 1

    monkeypatch.setattr(repository_module, "decode_index_columns", slow_decode)
    store.most = 0
    repo.load_index()
    assert len(repo.index) == 16 * 3
    assert store.most > 1  # the downloads overlapped
    assert most == 1
