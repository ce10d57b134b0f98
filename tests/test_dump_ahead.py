"""cairn dump reads ahead across files: small files stored together come with one request, and
every file gets its own blobs whatever came before it (holes, hardlinks, sockets, empty files)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
from pathlib import Path

from cairn.ops.dump import Dumper
from cairn.ops.progress import NullProgress
from cairn.repo import layout
from cairn.repo.repository import Repository
from cairn.storage.faulty import FaultyStorage
from cairn.storage.local import LocalStorage
from tests.craft import PASSWORD, create_repo, only_snapshot


def _dump(repo: Path, path: Path, workers: int = 4) -> tuple[bytes, list[str]]:
    """The tar of ``path`` in the only snapshot, and the data packs read (one per request)."""
    storage = FaultyStorage(LocalStorage(repo))
    r = Repository.open(storage, PASSWORD)
    r.load_index()
    out = io.BytesIO()
    Dumper(r, NullProgress(), workers=workers).run(only_snapshot(r), os.fsdecode(path), out)
    reads = [c.name for c in storage.log if c.op == "read_into" and c.name.startswith(layout.DATA)]
    return out.getvalue(), reads


def test_small_files_stored_together_are_read_together(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    repo = create_repo(tmp_path / "repo")
    src = tmp_path / "many"
    src.mkdir()
    files = {f"f{i:04}.txt": os.urandom(1000 + i) for i in range(400)}
    for name, data in files.items():
        (src / name).write_bytes(data)
    assert run_cli("backup", "-r", repo, src).code == 0

    tar, reads = _dump(repo, src)

    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        got = {
            Path(m.name).name: t.extractfile(m).read()  # type: ignore[union-attr]
            for m in t.getmembers()
            if m.isfile()
        }
    assert got == files
    # one request per file would be 400; stored back to back, they come in a few runs
    assert len(reads) <= 10, len(reads)


def test_every_file_gets_its_own_blobs_after_holes_links_and_sockets(
    tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    """A sparse file that ends in a hole (tar stops reading at its data), a hardlink (no
    content), an empty file and a socket (skipped) come before regular files: each of those is
    still written with its own bytes, read ahead or not."""
    repo = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "a-sparse.img", "wb") as f:
        f.write(os.urandom(100 << 10))
        f.truncate(64 << 20)  # ends in a hole: blobs of zeros after the data
    os.link(src / "a-sparse.img", src / "b-link.img")
    (src / "c-empty").write_bytes(b"")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "d.sock"))
    sock.close()
    for i in range(50):
        (src / f"e{i:02}.bin").write_bytes(os.urandom(3000 * (i + 1)))
    big = os.urandom(5 << 20)
    (src / "f-big.bin").write_bytes(big)
    (src / "g-last.txt").write_bytes(b"the last file\n")
    assert run_cli("backup", "-r", repo, src).code == 0

    for workers in (1, 4):
        tar, _ = _dump(repo, src, workers)
        archive = tmp_path / f"dump-{workers}.tar"
        archive.write_bytes(tar)
        target = tmp_path / f"untar-{workers}"
        target.mkdir()
        subprocess.run(["tar", "-xf", str(archive), "-C", str(target)], check=True)
        out = target / str(src).lstrip("/")
        for name in os.listdir(src):
            if name == "d.sock":
                assert not (out / name).exists()
                continue
            assert (out / name).read_bytes() == (src / name).read_bytes(), name
        assert os.stat(out / "b-link.img").st_ino == os.stat(out / "a-sparse.img").st_ino
