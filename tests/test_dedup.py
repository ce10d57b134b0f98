"""Deduplication: identical content is stored once, and unchanged files are not even read."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.verify import restored_diff

MiB = 1 << 20


# ------------------------------------------------------------------ recording file opens
# The backup opens files relative to their directory's descriptor (any depth works), so an
# open's path alone does not say which file it is: the recorder resolves the descriptor.
_real_open = os.open


def run_recording_opens(root: Path, fn, *args):  # type: ignore[no-untyped-def]
    """Calls ``fn(*args)``; returns its result and the non-directory paths opened below root,
    by this process or by one forked from it while ``fn`` runs (a backup's reading process):
    each open is appended to a file both write to."""
    top = os.fsencode(root)
    log = _real_open(
        root.parent / "opened.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    )

    def recording_open(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        fd = _real_open(path, flags, mode, dir_fd=dir_fd)
        raw = os.fsencode(path)
        if dir_fd is not None and not raw.startswith(b"/"):
            raw = os.fsencode(os.readlink(f"/proc/self/fd/{dir_fd}")) + b"/" + raw
        if (raw == top or raw.startswith(top + b"/")) and not flags & os.O_DIRECTORY:
            os.write(log, raw + b"\0")  # one write: whole, whichever process makes it
        return fd

    os.open = recording_open
    try:
        result = fn(*args)
    finally:
        os.open = _real_open
        os.close(log)
    opened = (root.parent / "opened.log").read_bytes().split(b"\0")[:-1]
    return result, opened


# ------------------------------------------------------------------ helpers
def data_size(repo: Path) -> int:
    """Bytes of pack files on disk (what the store would bill for data)."""
    return sum(p.stat().st_size for p in (repo / "data").rglob("*") if p.is_file())


def repo_files(repo: Path) -> dict[str, int]:
    return {
        str(p.relative_to(repo)): p.stat().st_size for p in sorted(repo.rglob("*")) if p.is_file()
    }


def backup(run_cli, repo: Path, *paths: Path | str) -> dict:  # type: ignore[no-untyped-def]
    res = run_cli("backup", "--repo", repo, "--json", *paths)
    assert res.code == 0, res.err
    return res.json()


def subtree_of(run_cli, repo: Path, snap_id: str, path: Path) -> str:  # type: ignore[no-untyped-def]
    """The tree blob id of directory ``path`` in a snapshot, found with ``cat``."""
    res = run_cli("cat", "--repo", repo, "snapshot", snap_id)
    assert res.code == 0, res.err
    tree = res.json()["tree"]
    for name in path.parts[1:]:
        res = run_cli("cat", "--repo", repo, "tree", tree)
        assert res.code == 0, res.err
        (node,) = [n for n in res.json()["nodes"] if n["name"] == name]
        tree = node["subtree"]
    return tree


def cat_blob(run_cli, repo: Path, blob_id: str) -> bytes:  # type: ignore[no-untyped-def]
    res = run_cli("cat", "--repo", repo, "blob", blob_id)
    assert res.code == 0, res.err
    return res.out.encode()


def write_file(path: bytes, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ identical content
def test_identical_files_in_one_backup_and_across_backups_are_stored_once(
    tmp_path, repo_path, run_cli
):
    content = os.urandom(10 * MiB)
    src = tmp_path / "src"
    src.mkdir()
    (src / "one.bin").write_bytes(content)
    (src / "two.bin").write_bytes(content)

    first = backup(run_cli, repo_path, src)["summary"]
    assert first["files_new"] == 2
    assert first["bytes_read"] == first["bytes_total"] == 2 * len(content)
    # Each chunk of the content is stored once: about 10 MiB were added, not 20.
    assert first["data_blobs_added"] >= 2  # 10 MiB cannot fit in one chunk (max 8 MiB)
    assert len(content) <= first["bytes_added"] < len(content) + 64 * 1024
    ls = run_cli("ls", "--repo", repo_path, "--json", "latest", src)
    assert ls.code == 0, ls.err
    nodes = {n["name"]: n for n in map(json.loads, ls.out.splitlines())}
    assert nodes["one.bin"]["content"] == nodes["two.bin"]["content"]
    assert len(nodes["one.bin"]["content"]) == first["data_blobs_added"]
    stored = data_size(repo_path)
    assert len(content) <= stored < len(content) * 1.05

    # The same content again, under another name, in another directory and another backup.
    other = tmp_path / "other"
    other.mkdir()
    (other / "renamed.dat").write_bytes(content)
    second = backup(run_cli, repo_path, other)["summary"]
    assert second["files_new"] == 1
    assert second["bytes_read"] == len(content)
    assert second["data_blobs_added"] == 0
    assert second["bytes_added"] < 16 * 1024  # a few tree blobs, no data
    assert data_size(repo_path) - stored < 16 * 1024


def test_insert_in_the_middle_of_a_large_file_adds_only_a_few_chunks(tmp_path, repo_path, run_cli):
    size = 64 * MiB
    data = os.urandom(size)
    src = tmp_path / "src"
    src.mkdir()
    target = src / "big.bin"
    target.write_bytes(data)
    first = backup(run_cli, repo_path, src)["summary"]
    assert first["data_blobs_added"] >= 16  # ~1 MiB chunks, at most 8 MiB each
    assert first["bytes_added"] >= size

    inserted = b"a few new bytes!"
    target.write_bytes(data[: size // 2] + inserted + data[size // 2 :])
    second = backup(run_cli, repo_path, src)["summary"]
    assert second["files_changed"] == 1
    assert second["bytes_read"] == size + len(inserted)
    assert 1 <= second["data_blobs_added"] <= 3
    assert second["bytes_added"] < size // 8


# ------------------------------------------------------------------ the files cache
N_DIRS, PER_DIR = 100, 200


def make_small_tree(root: Path) -> list[bytes]:
    paths = []
    base = os.fsencode(root)
    os.mkdir(base)
    for d in range(N_DIRS):
        dpath = base + b"/d%03d" % d
        os.mkdir(dpath)
        for f in range(PER_DIR):
            fpath = dpath + b"/f%03d.txt" % f
            write_file(fpath, b"file %d in dir %d\n" % (f, d))
            paths.append(fpath)
    return paths


def test_unchanged_files_are_not_read_and_changed_ones_are(tmp_path, repo_path, run_cli):
    src = tmp_path / "tree"
    paths = make_small_tree(src)
    total = sum(os.stat(p).st_size for p in paths)

    first, opened = run_recording_opens(src, backup, run_cli, repo_path, src)
    # The hook sees the backup's opens: every file was read once in the first backup.
    assert sorted(opened) == sorted(paths)
    assert first["summary"]["files_new"] == N_DIRS * PER_DIR
    assert first["summary"]["bytes_read"] == total

    second, opened = run_recording_opens(src, backup, run_cli, repo_path, src)
    s = second["summary"]
    assert opened == []
    assert s["files_unchanged"] == N_DIRS * PER_DIR
    assert s["files_new"] == s["files_changed"] == 0
    assert s["bytes_read"] == 0
    assert s["bytes_total"] == total
    assert s["data_blobs_added"] == 0
    # src and everything below it are the same trees; only the directories above src (shared
    # with the rest of the system, such as /tmp) may have changed in between.
    assert subtree_of(run_cli, repo_path, second["id"], src) == subtree_of(
        run_cli, repo_path, first["id"], src
    )
    assert s["dirs_unchanged"] >= N_DIRS + 1
    assert s["dirs_new"] + s["dirs_unchanged"] == N_DIRS + len(src.parts)
    assert s["tree_blobs_added"] == s["dirs_new"] <= len(src.parts) - 1
    assert second["parent"] == first["id"]

    # One file gets new content, one only a new mtime, and one new content of the same size
    # with its old mtime put back (only the ctime tells).
    content_changed, mtime_only, sneaky = paths[123], paths[4567], paths[19999]
    write_file(content_changed, b"new content, longer than before\n")
    st = os.stat(mtime_only)
    os.utime(mtime_only, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    st = os.stat(sneaky)
    old = Path(os.fsdecode(sneaky)).read_bytes()
    write_file(sneaky, old.upper())
    os.utime(sneaky, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(sneaky).st_mtime_ns == st.st_mtime_ns

    third, opened = run_recording_opens(src, backup, run_cli, repo_path, src)
    s = third["summary"]
    assert sorted(opened) == sorted([content_changed, mtime_only, sneaky])
    assert s["files_changed"] == 3
    assert s["files_new"] == 0
    assert s["files_unchanged"] == N_DIRS * PER_DIR - 3
    assert s["bytes_read"] == sum(os.stat(p).st_size for p in opened)
    assert s["data_blobs_added"] == 2  # the mtime-only file's content is already stored

    # The new snapshot has the new contents.
    for path in (content_changed, mtime_only, sneaky):
        res = run_cli("ls", "--repo", repo_path, "--json", "latest", os.fsdecode(path))
        assert res.code == 0, res.err
        (node,) = [json.loads(line) for line in res.out.splitlines()]
        stored = b"".join(cat_blob(run_cli, repo_path, blob) for blob in node["content"])
        assert stored == Path(os.fsdecode(path)).read_bytes()


def test_files_cache_is_not_trusted_when_the_repository_lost_the_blobs(
    tmp_path, repo_path, run_cli
):
    """The repository is put back to an older copy of itself (same id, so the same files
    cache): the cache still lists the files, but their blobs are gone from the index, so the
    files must be read and stored again, or the new snapshot would point at missing data."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(2 * MiB))
    empty_copy = tmp_path / "repo-at-init"
    shutil.copytree(repo_path, empty_copy)

    first = backup(run_cli, repo_path, src)["summary"]
    assert first["files_new"] == 2
    shutil.rmtree(repo_path)
    shutil.copytree(empty_copy, repo_path)
    assert run_cli("snapshots", "--repo", repo_path, "--json").json() == []

    second, opened = run_recording_opens(src, backup, run_cli, repo_path, src)
    s = second["summary"]
    assert s["files_unchanged"] == 0
    assert s["files_new"] + s["files_changed"] == 2
    assert s["bytes_read"] == s["bytes_total"] == 2 * MiB + 6
    assert s["data_blobs_added"] >= 2
    assert sorted(opened) == sorted(os.fsencode(src / p) for p in ("a.txt", "sub/b.bin"))
    res = run_cli("restore", "--repo", repo_path, f"latest:{src}", "--target", tmp_path / "out")
    assert res.code == 0, res.err
    assert restored_diff(src, tmp_path / "out", repo_path) == []


def test_files_cache_rows_per_directory(tmp_path, repo_path, run_cli):
    """Backing up one file of a directory keeps the cache entries of its siblings (another
    backup of the whole directory still reads nothing); a deleted file's entry is dropped, and
    a file that is read again after a change is recorded anew."""
    src = tmp_path / "d"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(os.urandom(5000))
    backup(run_cli, repo_path, src)

    # only one file given: the siblings' entries survive in the directory's row
    (src / "a").write_bytes(os.urandom(5000))
    one, opened = run_recording_opens(src, backup, run_cli, repo_path, src / "a")
    assert opened == [os.fsencode(src / "a")]
    assert one["summary"]["files_changed"] == 1
    again, opened = run_recording_opens(src, backup, run_cli, repo_path, src)
    assert opened == [] and again["summary"]["files_unchanged"] == 3

    # a deleted file leaves the row; a new file with its name is new, not unchanged
    (src / "b").unlink()
    backup(run_cli, repo_path, src)
    (src / "b").write_bytes(os.urandom(5000))
    last, opened = run_recording_opens(src, backup, run_cli, repo_path, src)
    assert opened == [os.fsencode(src / "b")]
    assert last["summary"]["files_new"] == 1 and last["summary"]["files_unchanged"] == 2
