"""Small files read whole and stored a group at a time (FileSaver.save_files, Writer.save_blobs,
Packer.add_many): the blobs are the ones the chunker would have made, stored once each, in packs
within the target size; a file that grew or vanished after the walk is handled as any other."""

from __future__ import annotations

import errno
import os
import random
import threading
from pathlib import Path

import blake3
import pytest

from cairn.model.chunker import Chunker
from cairn.ops.backup import archiver, file_saver
from cairn.ops.backup.file_saver import BackupCancelled, FileResult, FileSaver, OpenDirs
from cairn.ops.progress import NullProgress
from cairn.repo import layout
from cairn.repo.compress import pack_payload, unpack_payload
from cairn.repo.pack import open_blob, parse_pack
from cairn.repo.packer import Packer
from cairn.storage.local import LocalStorage
from tests.craft import create_repo, open_repo


def _chunk_ids(repo, data: bytes) -> list[bytes]:  # type: ignore[no-untyped-def]
    chunker = Chunker(repo.config.chunker)
    return [repo.blob_id(c) for c in chunker.chunks_of(data)]


def _save(repo, paths: list[Path]) -> list[FileResult | OSError]:  # type: ignore[no-untyped-def]
    items = [(os.fsencode(p), os.lstat(p), None) for p in paths]
    with repo.writer() as w:
        out = FileSaver(w).save_files(items)
        w.flush()
    return out


def test_small_files_are_stored_once_each_and_read_back(tmp_path: Path) -> None:
    repo = open_repo(create_repo(tmp_path / "repo"))
    minimum = repo.config.chunker.min_size
    rng = random.Random(3)
    src = tmp_path / "src"
    src.mkdir()
    contents = [rng.randbytes(rng.randint(1, 400)) for _ in range(150)]
    contents += [b"", b"same", b"same", rng.randbytes(minimum - 1), rng.randbytes(3 * minimum)]
    contents += [rng.randbytes(300_000) for _ in range(8)]  # more than one group's worth
    paths = []
    for i, data in enumerate(contents):
        p = src / f"f{i:03d}"
        p.write_bytes(data)
        paths.append(p)
    out = _save(repo, paths)

    stored: set[bytes] = set()
    for data, r in zip(contents, out, strict=True):
        assert isinstance(r, FileResult)
        assert r.size == len(data) and not r.changed_while_reading
        assert r.content == _chunk_ids(repo, data)
        if r.content and r.content[0] in stored:
            assert r.blobs_added == 0 and r.bytes_added == 0 and r.bytes_stored == 0
        else:
            assert r.blobs_added == len(r.content)
            assert r.bytes_added == len(data)
            assert (r.bytes_stored > 0) == bool(data)
        stored.update(r.content)

    repo = open_repo(tmp_path / "repo")
    for data, r in zip(contents, out, strict=True):
        assert isinstance(r, FileResult)
        assert b"".join(repo.load_blob(b, layout.DATA_BLOB) for b in r.content) == data


def test_a_small_file_that_grew_past_the_minimum_chunk_is_read_whole(tmp_path: Path) -> None:
    repo = open_repo(create_repo(tmp_path / "repo"))
    minimum = repo.config.chunker.min_size
    p = tmp_path / "grows"
    p.write_bytes(b"x" * 100)
    before = os.lstat(p)
    data = os.urandom(repo.config.chunker.max_size + minimum)  # more than one chunk
    with open(p, "ab") as f:  # after the walk saw it, before it is read
        f.write(data)
    with repo.writer() as w:
        [r] = FileSaver(w).save_files([(os.fsencode(p), before, None)])
        w.flush()
    assert isinstance(r, FileResult)
    whole = b"x" * 100 + data
    assert r.changed_while_reading and r.size == len(whole)
    assert r.content == _chunk_ids(repo, whole) and len(r.content) > 1
    repo = open_repo(tmp_path / "repo")
    assert b"".join(repo.load_blob(b, layout.DATA_BLOB) for b in r.content) == whole


def test_a_file_gone_or_replaced_among_small_ones_is_its_own_error(tmp_path: Path) -> None:
    repo = open_repo(create_repo(tmp_path / "repo"))
    paths = []
    for i in range(10):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"file %d" % i)
        paths.append(p)
    items = [(os.fsencode(p), os.lstat(p), None) for p in paths]
    paths[3].unlink()
    paths[6].unlink()
    paths[6].write_bytes(b"another file, another inode")
    with repo.writer() as w:
        out = FileSaver(w).save_files(items)
        w.flush()
    assert isinstance(out[3], FileNotFoundError)
    assert isinstance(out[6], OSError) and "replaced" in str(out[6])
    repo = open_repo(tmp_path / "repo")
    for i in set(range(10)) - {3, 6}:
        r = out[i]
        assert isinstance(r, FileResult) and r.blobs_added == 1
        assert repo.load_blob(r.content[0], layout.DATA_BLOB) == b"file %d" % i


def test_blobs_added_in_a_row_fill_packs_within_the_target_size(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    storage = LocalStorage(tmp_path / "store")
    key = os.urandom(32)
    records = []
    pack_size = 64 << 10
    packer = Packer(storage, key, pack_size, records.append, uploads=2)
    rng = random.Random(9)
    blobs = {}
    rows = []
    for _ in range(12):  # groups of many small blobs, and one larger than a pack
        group = []
        for size in [rng.randint(0, 3000) for _ in range(40)] + [rng.choice([10, 90_000])]:
            data = rng.randbytes(size)
            blob_id = blake3.blake3(data + len(blobs).to_bytes(4, "little")).digest()
            blobs[blob_id] = data
            group.append((blob_id, pack_payload(data, None), len(data)))
        rows.append(group)
    for group in rows:
        stored = packer.add_many(layout.DATA_BLOB, group)
        assert stored == [len(payload) + 16 for _, payload, _ in group]
    packer.flush()
    packer.close()
    assert len(records) > 5
    seen = {}
    for rec in records:
        data = storage.read(layout.pack_name(rec.info.id.hex()))
        salt, blob_type, refs = parse_pack(key, data)
        assert refs == rec.blobs
        if len(refs) > 1:
            assert len(data) <= pack_size
        for ref in refs:
            sealed = data[ref.offset : ref.offset + ref.length]
            payload = open_blob(key, salt, blob_type, ref.id, ref.offset, sealed)
            seen[ref.id] = unpack_payload(payload, ref.raw_length)
    assert seen == blobs


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _batch(tmp_path: Path, count: int, dirs: OpenDirs) -> list:  # type: ignore[type-arg]
    """``count`` small files in one directory, each to be opened relative to it (as the walk
    hands them over: the directory held once per file)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(count):
        (src / f"f{i:02d}").write_bytes(b"content %d" % i)
    handle = dirs.open(os.fsencode(src))
    items = [
        (os.fsencode(src / f"f{i:02d}"), os.lstat(src / f"f{i:02d}"), (handle.hold(), b"f%02d" % i))
        for i in range(count)
    ]
    handle.release()  # the walk lets it go; the files still hold it
    return items


def test_a_batch_opened_ahead_closes_every_descriptor(tmp_path: Path) -> None:
    """The files of a batch are opened before any is read: whatever fails, every file and
    directory descriptor is closed by the end."""
    repo = open_repo(create_repo(tmp_path / "repo"))
    dirs = OpenDirs()
    before = _open_fds()
    items = _batch(tmp_path, 12, dirs)
    os.unlink(items[4][0])  # gone before it is opened: its own error
    with repo.writer() as w:
        out = FileSaver(w).save_files(items)
        w.flush()
    assert isinstance(out[4], FileNotFoundError)
    assert all(isinstance(r, FileResult) for i, r in enumerate(out) if i != 4)
    assert not dirs.handles and _open_fds() == before


def test_a_batch_cancelled_midway_closes_what_it_opened(tmp_path: Path) -> None:
    repo = open_repo(create_repo(tmp_path / "repo"))
    dirs = OpenDirs()
    before = _open_fds()
    items = _batch(tmp_path, 12, dirs)

    class CancelledAfterThree(FileSaver):
        reads = 0

        def _read_small(self, *args):  # type: ignore[no-untyped-def]
            self.reads += 1
            if self.reads == 3:
                self.cancelled.set()
            return super()._read_small(*args)

    with repo.writer() as w:
        saver = CancelledAfterThree(w)
        with pytest.raises(BackupCancelled):
            saver.save_files(items)
    assert saver.reads == 3
    assert not dirs.handles and _open_fds() == before


def test_a_batch_interrupted_while_opening_lets_every_directory_go(tmp_path: Path) -> None:
    repo = open_repo(create_repo(tmp_path / "repo"))
    dirs = OpenDirs()
    before = _open_fds()
    items = _batch(tmp_path, 12, dirs)

    class InterruptedAtFive(FileSaver):
        opens = 0

        def _open(self, path, before, where):  # type: ignore[no-untyped-def]
            self.opens += 1
            if self.opens == 5:
                assert where is not None
                where[0].release()  # as _open does, whatever happens
                raise KeyboardInterrupt
            return super()._open(path, before, where)

    with repo.writer() as w, pytest.raises(KeyboardInterrupt):
        InterruptedAtFive(w).save_files(items)
    assert not dirs.handles and _open_fds() == before


def test_files_beyond_the_open_ahead_budget_are_opened_as_they_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many reading threads, a backup holds at most ``OPEN_AHEAD`` files open ahead
    of reading them; the others of the batch are opened in turn, and read all the same."""
    monkeypatch.setattr(file_saver, "OPEN_AHEAD", 3)
    repo = open_repo(create_repo(tmp_path / "repo"))
    dirs = OpenDirs()
    items = _batch(tmp_path, 12, dirs)
    baseline = len(_open_fds())

    class Counting(FileSaver):
        most = 0

        def _read_small(self, *args):  # type: ignore[no-untyped-def]
            self.most = max(self.most, len(_open_fds()) - 1 - baseline)  # less listdir's own
            return super()._read_small(*args)

    with repo.writer() as w:
        saver = Counting(w)
        out = saver.save_files(items)
        w.flush()
    assert 1 <= saver.most <= 3
    repo = open_repo(tmp_path / "repo")
    for i, r in enumerate(out):
        assert isinstance(r, FileResult)
        assert repo.load_blob(r.content[0], layout.DATA_BLOB) == b"content %d" % i
    assert not dirs.handles


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_where_files_are_read_follows_read_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Small files are read by the walk itself by default (a second thread would only hand the
    GIL back and forth), on threads of their own above 2, and large files on a thread of their
    own from 2; whatever the threads, the backup is the same."""
    rng = random.Random(5)
    src = tmp_path / "src"
    for d in range(3):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(90):
            (src / f"d{d}" / f"f{i:02d}").write_bytes(rng.randbytes(rng.randint(0, 3000)))
    (src / "d1" / "large").write_bytes(rng.randbytes(archiver.SMALL_FILE + 1))
    (src / "large").write_bytes(rng.randbytes(2 * archiver.SMALL_FILE))
    seen: list[tuple[str, bool]] = []
    save_files = FileSaver.save_files

    def spy(self, items):  # type: ignore[no-untyped-def]
        large = any(st.st_size >= archiver.SMALL_FILE for _, st, _ in items)
        seen.append((threading.current_thread().name, large))
        return save_files(self, items)

    monkeypatch.setattr(FileSaver, "save_files", spy)
    create_repo(tmp_path / "repo")
    trees = []
    for w in (workers, 2):  # into one repository: the same backup, the same trees
        repo = open_repo(tmp_path / "repo")
        with repo.writer() as writer:
            options = archiver.BackupOptions(workers=w)
            trees.append(archiver.Archiver(writer, None, options, NullProgress()).run([bytes(src)]))
            writer.flush()
        if len(trees) == 1:
            walker = threading.current_thread().name
            small = {name for name, large in seen if not large}
            large = {name for name, large in seen if large}
            assert len(seen) >= 6
            if workers == 1:
                assert small == large == {walker}
            elif workers == 2:
                assert small == {walker} and large == {"cairn-read-large_0"}
            else:
                assert small and all(n.startswith("cairn-read_") for n in small)
                assert large == {"cairn-read-large_0"}
    assert trees[0] == trees[1]


def _small_set(tmp_path: Path, repo) -> tuple[list[Path], list[bytes]]:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    sizes = [0, 1, 300, 4096, 5000, 70_000, repo.config.chunker.min_size - 1]
    src = tmp_path / "src"
    src.mkdir()
    paths, contents = [], []
    for i, size in enumerate(sizes):
        p = src / f"f{i}"
        data = rng.randbytes(size)
        p.write_bytes(data)
        paths.append(p)
        contents.append(data)
    return paths, contents


def _read_back(tmp_path: Path, out, contents: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    repo = open_repo(tmp_path / "repo")
    for r, data in zip(out, contents, strict=True):
        assert isinstance(r, FileResult) and r.size == len(data)
        assert not r.changed_while_reading
        assert b"".join(repo.load_blob(b, layout.DATA_BLOB) for b in r.content) == data


def test_small_files_in_the_page_cache_take_one_read_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small file the page cache holds is read in one call, and none more to find its end
    (its status says it is whole); an empty one is not read at all."""
    repo = open_repo(create_repo(tmp_path / "repo"))
    paths, contents = _small_set(tmp_path, repo)
    for p in paths:
        p.read_bytes()  # in the page cache, whatever the file system did on writing
    reads: list[str] = []
    for name in ("read", "pread", "preadv"):
        real = getattr(os, name)

        def counted(*args, _real=real, _name=name):  # type: ignore[no-untyped-def]
            reads.append(_name)
            return _real(*args)

        monkeypatch.setattr(os, name, counted)
    out = _save(repo, paths)
    monkeypatch.undo()
    if file_saver._NOWAIT is not None:  # where reads can be asked not to wait (Linux)
        assert len(reads) == len([c for c in contents if c])
    _read_back(tmp_path, out, contents)


@pytest.mark.parametrize("cache", ["nothing", "part", "no-nowait"])
def test_small_files_are_read_whole_whatever_the_page_cache_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    """What the page cache did not hold is read from where it ended; where a read cannot be
    asked not to wait, files are read as they always were."""
    repo = open_repo(create_repo(tmp_path / "repo"))
    paths, contents = _small_set(tmp_path, repo)
    if cache == "nothing":
        monkeypatch.setattr(file_saver, "cached_head", lambda fd, size: None)
    elif cache == "part":
        monkeypatch.setattr(file_saver, "cached_head", lambda fd, size: os.pread(fd, size // 2, 0))
    else:

        def unsupported(*args):  # type: ignore[no-untyped-def]
            raise OSError(errno.EOPNOTSUPP, "not supported")

        monkeypatch.setattr(file_saver, "_NOWAIT", 8)
        monkeypatch.setattr(os, "preadv", unsupported)
    out = _save(repo, paths)
    if cache == "no-nowait":
        assert file_saver._NOWAIT is None  # asked once, not at every file
    _read_back(tmp_path, out, contents)


def test_small_files_that_grew_or_shrank_after_the_walk_are_read_as_they_are(
    tmp_path: Path,
) -> None:
    repo = open_repo(create_repo(tmp_path / "repo"))
    paths, contents = _small_set(tmp_path, repo)
    items = [(os.fsencode(p), os.lstat(p), None) for p in paths]
    with open(paths[3], "ab") as f:
        f.write(b"grown")
    with open(paths[4], "r+b") as f:
        f.truncate(1000)
    contents[3] += b"grown"
    contents[4] = contents[4][:1000]
    with repo.writer() as w:
        out = FileSaver(w).save_files(items)
        w.flush()
    for k in (3, 4):
        r = out[k]
        assert isinstance(r, FileResult) and r.changed_while_reading
        assert r.size == len(contents[k])
        assert repo.load_blob(r.content[0], layout.DATA_BLOB) == contents[k]
    _read_back(tmp_path, out[:3] + out[5:], contents[:3] + contents[5:])


@pytest.mark.parametrize("merge_min", [1, 1 << 16])
def test_a_group_stores_each_blob_once_that_the_index_does_not_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, merge_min: int
) -> None:
    """A group's blobs are looked up in the index all at once, merged into its arrays or not
    (``merge_min``): those it holds and those the group repeats are not stored again."""
    from cairn.repo import index as index_module

    monkeypatch.setattr(index_module, "_MERGE_MIN", merge_min)
    repo = open_repo(create_repo(tmp_path / "repo"))
    old = [b"old %d" % i for i in range(20)]
    with repo.writer() as w:
        w.save_blobs(layout.DATA_BLOB, old)
        w.flush()
    group = [b"new 1", old[3], b"new 2", b"new 1", old[17], b"new 3", b"new 2"] * 3
    with repo.writer() as w:
        saved = w.save_blobs(layout.DATA_BLOB, group)
        w.flush()
    fresh = [data for data, s in zip(group, saved, strict=True) if s.new]
    assert fresh == [b"new 1", b"new 2", b"new 3"]
    assert all(s.id == repo.blob_id(d) for d, s in zip(group, saved, strict=True))
    repo = open_repo(tmp_path / "repo")
    assert len(repo.index) == 23
    for data in group:
        assert repo.load_blob(repo.blob_id(data), layout.DATA_BLOB) == data


def test_a_small_file_that_fails_when_taken_from_the_cache_is_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error taking a file's content at once (an I/O error) is that file's, found where it
    is read; the batch goes on and every descriptor is closed."""
    repo = open_repo(create_repo(tmp_path / "repo"))
    dirs = OpenDirs()
    before = _open_fds()
    items = _batch(tmp_path, 12, dirs)
    bad = os.stat(items[5][0]).st_ino
    real_preadv, real_pread = os.preadv, os.pread

    def failing(read):  # type: ignore[no-untyped-def]
        def call(fd, *args):  # type: ignore[no-untyped-def]
            if os.fstat(fd).st_ino == bad:
                raise OSError(errno.EIO, "Input/output error")
            return read(fd, *args)

        return call

    monkeypatch.setattr(os, "preadv", failing(real_preadv))
    monkeypatch.setattr(os, "pread", failing(real_pread))
    with repo.writer() as w:
        out = FileSaver(w).save_files(items)
        w.flush()
    monkeypatch.undo()
    assert isinstance(out[5], OSError) and out[5].errno == errno.EIO
    assert all(isinstance(r, FileResult) for i, r in enumerate(out) if i != 5)
    assert not dirs.handles and _open_fds() == before
