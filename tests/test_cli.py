"""The command line: every command, its --json output, snapshot selection, excludes, passwords."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.core.units import format_bytes
from cairn.repo.repository import Repository
from cairn.storage.local import LocalStorage
from tests.conftest import CAIRN, FAST_KDF, PASSWORD


# ------------------------------------------------------------------ fixtures and helpers
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with cheap KDF parameters, so the many commands below open it quickly."""
    path = tmp_path / "repo"
    path.mkdir()
    Repository.create(LocalStorage(path), PASSWORD.encode(), pack_size=1 << 20, kdf=FAST_KDF)
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A small tree with a subdirectory, an empty file, a symlink and a fifo."""
    root = tmp_path / "src"
    (root / "sub" / "inner").mkdir(parents=True)
    (root / "hello.txt").write_text("hello, world\n")
    (root / "empty").write_bytes(b"")
    (root / "sub" / "data.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "inner" / "note.md").write_text("# note\n")
    os.chmod(root / "hello.txt", 0o640)
    os.chmod(root / "sub", 0o750)
    os.symlink("hello.txt", root / "link")
    os.mkfifo(root / "pipe")
    return root


def ok(res):  # type: ignore[no-untyped-def]
    assert res.code == 0, f"exit {res.code}: {res.err}"
    return res


def backup(run_cli, repo: Path, *args: str | Path) -> dict:  # type: ignore[no-untyped-def]
    return ok(run_cli("backup", "--repo", repo, "--json", *args)).json()


def ls_json(run_cli, repo: Path, *args: str | Path) -> list[dict]:  # type: ignore[no-untyped-def]
    """`ls --json` prints one JSON object per entry (JSON lines)."""
    res = ok(run_cli("ls", "--repo", repo, "--json", *args))
    return [json.loads(line) for line in res.out.splitlines()]


def listed_paths(run_cli, repo: Path, snap: str, root: Path) -> set[str]:  # type: ignore[no-untyped-def]
    """Paths in the snapshot below ``root``, relative to it."""
    prefix = f"{root}/"
    return {e["path"][len(prefix) :] for e in ls_json(run_cli, repo, snap, root)}


def repo_listing(repo: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            out[str(p.relative_to(repo))] = (st.st_size, st.st_mtime_ns)
    return out


def snapshot_ids(run_cli, repo: Path, *flt: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [s["id"] for s in ok(run_cli("snapshots", "--repo", repo, "--json", *flt)).json()]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------ init
def test_init_refuses_an_existing_repository(tmp_path, repo_path, run_cli):
    before = repo_listing(repo_path)
    res = run_cli("init", "--repo", repo_path)
    assert res.code != 0
    assert "already" in one_error_line(res.err)
    assert repo_listing(repo_path) == before
    # and the repository still opens with its password
    assert ok(run_cli("snapshots", "--repo", repo_path, "--json")).json() == []


def test_init_json_and_bad_pack_size(tmp_path, run_cli):
    res = ok(run_cli("init", "--repo", tmp_path / "r", "--pack-size", "4M", "--json"))
    doc = res.json()
    assert doc["pack_size"] == 4 << 20
    assert len(doc["id"]) == 32
    assert ok(run_cli("cat", "--repo", tmp_path / "r", "config")).json()["id"] == doc["id"]
    res = run_cli("init", "--repo", tmp_path / "r2", "--pack-size", "1K")
    assert res.code != 0
    assert "pack-size" in res.err
    assert not (tmp_path / "r2" / "config").exists()


# ------------------------------------------------------------------ --json everywhere
def test_json_output_of_every_command_parses(tmp_path, repo, src, run_cli):
    snap = backup(run_cli, repo, src)
    assert snap["dry_run"] is False
    assert snap["warnings"] == []
    assert snap["paths"] == [str(src)]
    assert {"files_new", "bytes_added", "requests"} <= set(snap["summary"])
    assert snap["summary"]["files_new"] == 4
    assert snap["summary"]["requests"]["put"] >= 3  # data pack, tree pack, index, snapshot

    snaps = ok(run_cli("snapshots", "--repo", repo, "--json")).json()
    assert [s["id"] for s in snaps] == [snap["id"]]
    assert snaps[0]["tree"] == snap["tree"]

    entries = ls_json(run_cli, repo, "latest")
    assert f"{src}/hello.txt" in {e["path"] for e in entries}

    for args in (
        ("cat", "config"),
        ("cat", "snapshot", snap["id"]),
        ("cat", "tree", snap["tree"]),
        ("stats",),
        ("stats", "latest"),
        ("restore", "latest", "--target", tmp_path / "out"),
    ):
        res = ok(run_cli(*args[:1], "--repo", repo, "--json", *args[1:]))
        doc = json.loads(res.out)
        assert isinstance(doc, dict) and doc, args
    # restore --json reports what it did
    res = ok(run_cli("restore", "--repo", repo, "--json", "latest", "--target", tmp_path / "o2"))
    assert res.json()["snapshot"] == snap["id"]
    assert res.json()["files"] == 4


# ------------------------------------------------------------------ snapshot filters
def test_snapshots_filters(tmp_path, repo, src, run_cli):
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("x")
    a = backup(run_cli, repo, "--host", "alpha", "--tag", "daily", src)
    b = backup(run_cli, repo, "--host", "alpha", "--tag", "weekly,offsite", src)
    c = backup(run_cli, repo, "--host", "beta", "--tag", "daily", "--tag", "offsite", other)
    d = backup(run_cli, repo, "--host", "beta", src, other)
    assert (a["host"], a["tags"]) == ("alpha", ["daily"])
    assert b["tags"] == ["offsite", "weekly"]
    assert c["tags"] == ["daily", "offsite"]
    assert d["tags"] == []

    assert snapshot_ids(run_cli, repo) == [a["id"], b["id"], c["id"], d["id"]]
    assert snapshot_ids(run_cli, repo, "--host", "alpha") == [a["id"], b["id"]]
    assert snapshot_ids(run_cli, repo, "--host", "beta") == [c["id"], d["id"]]
    assert snapshot_ids(run_cli, repo, "--host", "alpha", "--host", "beta") == snapshot_ids(
        run_cli, repo
    )
    assert snapshot_ids(run_cli, repo, "--host", "gamma") == []
    assert snapshot_ids(run_cli, repo, "--tag", "daily") == [a["id"], c["id"]]
    assert snapshot_ids(run_cli, repo, "--tag", "offsite") == [b["id"], c["id"]]
    assert snapshot_ids(run_cli, repo, "--tag", "daily,offsite") == [c["id"]]  # both tags
    assert snapshot_ids(run_cli, repo, "--tag", "weekly", "--tag", "daily") == [
        a["id"],
        b["id"],
        c["id"],
    ]  # either
    assert snapshot_ids(run_cli, repo, "--path", str(src)) == [a["id"], b["id"], d["id"]]
    assert snapshot_ids(run_cli, repo, "--path", str(other)) == [c["id"], d["id"]]
    assert snapshot_ids(run_cli, repo, "--path", str(src), "--path", str(other)) == [d["id"]]
    assert snapshot_ids(run_cli, repo, "--host", "beta", "--tag", "daily") == [c["id"]]
    assert snapshot_ids(run_cli, repo, "--host", "alpha", "--path", str(other)) == []

    # filters choose what `latest` means, for ls and stats too
    entries = ls_json(run_cli, repo, "--host", "alpha", "latest", src)
    assert entries
    res = ok(run_cli("stats", "--repo", repo, "--json", "--tag", "daily", "latest"))
    assert res.json()["snapshot"] == c["id"]
    res = ok(run_cli("stats", "--repo", repo, "--json", "--host", "alpha"))
    assert res.json()["snapshots"] == 2
    res = run_cli("ls", "--repo", repo, "--host", "gamma", "latest")
    assert res.code != 0
    assert "no snapshot" in one_error_line(res.err)

    # the human listing shows the same snapshots
    res = ok(run_cli("snapshots", "--repo", repo, "--host", "alpha"))
    assert a["short_id"] in res.out and b["short_id"] in res.out
    assert c["short_id"] not in res.out
    assert "2 snapshots" in res.out


def test_parent_is_the_last_snapshot_of_the_same_host_and_paths(repo, src, run_cli):
    first = backup(run_cli, repo, "--host", "h", src)
    backup(run_cli, repo, "--host", "other", src)
    third = backup(run_cli, repo, "--host", "h", src)
    assert first["parent"] is None
    assert third["parent"] == first["id"]


# ------------------------------------------------------------------ snapshot references
def test_latest_and_id_prefixes(tmp_path, repo, src, run_cli):
    first = backup(run_cli, repo, src)
    (src / "later.txt").write_text("added later\n")
    second = backup(run_cli, repo, src)
    ids = {first["id"], second["id"]}
    assert len(ids) == 2

    def names(ref: str) -> set[str]:
        return listed_paths(run_cli, repo, ref, src)

    assert "later.txt" in names("latest")
    assert "later.txt" in names(second["id"])
    assert "later.txt" not in names(first["id"])
    # the shortest prefix that is unique
    n = next(n for n in range(1, 65) if first["id"][:n] != second["id"][:n])
    assert "later.txt" not in names(first["id"][:n])
    assert "later.txt" not in names(first["id"][:n].upper())
    assert "later.txt" in names(second["short_id"])

    doc = ok(run_cli("cat", "--repo", repo, "snapshot", first["id"][:n])).json()
    assert doc["id"] == first["id"]
    assert ok(run_cli("cat", "--repo", repo, "snapshot", "latest")).json()["id"] == second["id"]

    ok(run_cli("restore", "--repo", repo, f"{first['id'][:n]}:{src}", "--target", tmp_path / "a"))
    assert (tmp_path / "a" / "hello.txt").read_text() == "hello, world\n"
    assert not (tmp_path / "a" / "later.txt").exists()
    ok(run_cli("restore", "--repo", repo, f"latest:{src}/sub", "--target", tmp_path / "b"))
    assert sorted(os.listdir(tmp_path / "b")) == ["data.bin", "inner"]
    assert (tmp_path / "b" / "data.bin").read_bytes() == (src / "sub" / "data.bin").read_bytes()


def test_ambiguous_and_unknown_prefixes_are_clear_errors(tmp_path, repo, src, run_cli):
    ids: list[str] = []
    # 17 snapshots must share a first hex digit; usually a few are enough
    while len({i[0] for i in ids}) == len(ids):
        ids.append(backup(run_cli, repo, "--tag", str(len(ids)), src)["id"])
    counts = {c: sum(i[0] == c for i in ids) for c in "0123456789abcdef"}
    ambiguous = next(c for c, k in counts.items() if k > 1)
    hexdigits = "0123456789abcdef"
    unknown = next(
        p
        for p in (a + b for a in hexdigits for b in hexdigits)
        if not any(i.startswith(p) for i in ids)
    )

    for args in (
        ("ls", ambiguous),
        ("cat", "snapshot", ambiguous),
        ("restore", ambiguous, "--target", tmp_path / "out"),
        ("stats", ambiguous),
    ):
        res = run_cli(args[0], "--repo", repo, *args[1:])
        assert res.code != 0, args
        assert "ambiguous" in one_error_line(res.err), args
        assert res.out == ""
    for args in (
        ("ls", unknown),
        ("cat", "snapshot", unknown),
        ("restore", unknown, "--target", tmp_path / "out"),
        ("ls", "not-an-id"),
    ):
        res = run_cli(args[0], "--repo", repo, *args[1:])
        assert res.code != 0, args
        line = one_error_line(res.err)
        assert unknown in line or "not-an-id" in line, args
        assert res.out == ""
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ ls
def test_ls_long_and_json_show_names_types_modes_sizes(repo, src, run_cli):
    backup(run_cli, repo, src)
    entries = {e["path"][len(str(src)) + 1 :]: e for e in ls_json(run_cli, repo, "latest", src)}
    assert set(entries) == {
        "hello.txt",
        "empty",
        "sub",
        "sub/data.bin",
        "sub/inner",
        "sub/inner/note.md",
        "link",
        "pipe",
    }
    assert entries["hello.txt"]["name"] == "hello.txt"
    assert entries["hello.txt"]["type"] == "file"
    assert entries["hello.txt"]["mode"] == 0o640
    assert entries["hello.txt"]["size"] == 13
    assert entries["hello.txt"]["mtime"] == (src / "hello.txt").stat().st_mtime_ns
    assert entries["empty"]["size"] == 0
    assert "content" not in entries["empty"]  # no chunks for no data
    assert entries["sub"]["type"] == "dir"
    assert entries["sub"]["mode"] == 0o750
    assert len(entries["sub"]["subtree"]) == 64
    assert entries["sub/data.bin"]["size"] == 300_000
    assert entries["sub/data.bin"]["content"]
    assert entries["link"]["type"] == "symlink"
    assert entries["link"]["target"] == "hello.txt"
    assert entries["pipe"]["type"] == "fifo"
    assert entries["sub/inner/note.md"]["name"] == "note.md"

    res = ok(run_cli("ls", "--repo", repo, "-l", "latest", src))
    lines = {line.rsplit(" ", 1)[-1]: line for line in res.out.splitlines() if " -> " not in line}
    lines.update(
        {
            line.split(" -> ")[0].rsplit(" ", 1)[-1]: line
            for line in res.out.splitlines()
            if " -> " in line
        }
    )
    hello = lines[f"{src}/hello.txt"].split()
    assert hello[0] == "-rw-r-----"
    assert hello[2] == "13"
    assert lines[f"{src}/sub"].split()[0] == "drwxr-x---"
    assert lines[f"{src}/sub/data.bin"].split()[2] == "300000"
    assert lines[f"{src}/link"].startswith("l")
    assert lines[f"{src}/link"].endswith(f"{src}/link -> hello.txt")
    assert lines[f"{src}/pipe"].startswith("p")
    assert len(res.out.splitlines()) == 8

    # plain ls: one path per line
    plain = ok(run_cli("ls", "--repo", repo, "latest", src)).out.splitlines()
    assert sorted(plain) == sorted(f"{src}/{p}" for p in entries)


def test_ls_of_a_subtree_lists_only_that_subtree(repo, src, run_cli):
    backup(run_cli, repo, src)
    sub = src / "sub"
    paths = [e["path"] for e in ls_json(run_cli, repo, "latest", sub)]
    assert sorted(paths) == [f"{sub}/data.bin", f"{sub}/inner", f"{sub}/inner/note.md"]
    plain = ok(run_cli("ls", "--repo", repo, "latest", f"{sub}/")).out.splitlines()
    assert sorted(plain) == sorted(paths)
    # a file: just that file
    (entry,) = ls_json(run_cli, repo, "latest", src / "hello.txt")
    assert entry["path"] == f"{src}/hello.txt"
    # the whole snapshot starts at the root and contains the subtree
    everything = [e["path"] for e in ls_json(run_cli, repo, "latest")]
    assert everything[0] == "/" + src.parts[1]
    assert set(paths) < set(everything)
    res = run_cli("ls", "--repo", repo, "latest", src / "missing")
    assert res.code != 0
    assert "no such path" in one_error_line(res.err)


def test_ls_and_restore_non_utf8_names(tmp_path, repo, run_cli):
    root = tmp_path / "raw"
    root.mkdir()
    name = b"caf\xe9-\xff.txt"
    with open(os.fsencode(root) + b"/" + name, "wb") as f:
        f.write(b"latin-1 name\n")
    backup(run_cli, repo, root)
    (entry,) = ls_json(run_cli, repo, "latest", root)
    assert os.fsencode(entry["path"]) == os.fsencode(root) + b"/" + name
    ok(run_cli("restore", "--repo", repo, f"latest:{root}", "--target", tmp_path / "out"))
    assert os.listdir(os.fsencode(tmp_path / "out")) == [name]


# ------------------------------------------------------------------ restore of a directory
@pytest.mark.parametrize("read_order", ["file", "pack"])
def test_restoring_a_directory_gives_the_target_its_metadata(
    tmp_path, repo, src, run_cli, read_order
):
    """`SNAP:/dir` puts the contents of /dir in the target, which stands for /dir: it gets the
    directory's mode, times and xattrs, as every directory of a whole restore does."""
    sub = src / "sub"
    os.setxattr(sub, b"user.origin", b"laptop")
    os.chmod(sub, 0o751)
    os.utime(sub, ns=(1_500_000_000_000_000_000, 1_600_000_000_000_000_000))
    backup(run_cli, repo, src)
    out = tmp_path / "out"
    ok(
        run_cli(
            "restore", "--repo", repo, f"latest:{sub}", "--target", out, "--read-order", read_order
        )
    )
    assert (out / "data.bin").read_bytes() == (sub / "data.bin").read_bytes()  # the contents
    st = out.stat()
    assert oct(st.st_mode & 0o7777) == oct(0o751)
    assert st.st_mtime_ns == 1_600_000_000_000_000_000
    assert os.getxattr(out, b"user.origin") == b"laptop"
    # a whole restore leaves the target alone (it stands for no directory of the snapshot)
    whole = tmp_path / "whole"
    whole.mkdir(mode=0o700)
    ok(run_cli("restore", "--repo", repo, "latest", "--target", whole))
    assert whole.stat().st_mode & 0o7777 == 0o700
    assert os.getxattr(whole / str(sub).lstrip("/"), b"user.origin") == b"laptop"


# ------------------------------------------------------------------ counts as printed
def test_counts_are_pluralised_and_verify_counts_every_restored_file(tmp_path, repo, run_cli):
    src = tmp_path / "src"
    src.mkdir()
    (src / "one").write_text("one\n")
    os.link(src / "one", src / "other-name")  # a later path of a hardlink: linked, not written
    backup(run_cli, repo, src)
    assert ok(run_cli("snapshots", "--repo", repo)).out.splitlines()[-1] == "1 snapshot"
    res = ok(
        run_cli(
            "restore", "--repo", repo, f"latest:{src}", "--target", tmp_path / "out", "--verify"
        )
    )
    assert "restored 2 files, 0 dirs, 0 other entries" in res.out
    assert "verified 2 files" in res.out
    doc = ok(
        run_cli(
            "restore",
            "--repo",
            repo,
            f"latest:{src}",
            "--target",
            tmp_path / "o2",
            "--verify",
            "--read-order",
            "pack",
            "--json",
        )
    ).json()
    assert doc["files"] == doc["verified"] == 2
    (src / "one").unlink()
    backup(run_cli, repo, src)
    res = ok(
        run_cli("restore", "--repo", repo, f"latest:{src}", "--target", tmp_path / "o3", "--verify")
    )
    assert "restored 1 file, 0 dirs, 0 other entries" in res.out
    assert "verified 1 file\n" in res.out


# ------------------------------------------------------------------ cat
def test_cat_every_kind_of_object(tmp_path, repo, src, run_cli):
    snap = backup(run_cli, repo, src)

    config = ok(run_cli("cat", "--repo", repo, "config")).json()
    assert config["version"] == 1
    assert len(config["id"]) == 32
    assert config["pack_size"] == 1 << 20
    assert config["chunker"]["min_size"] == 256 << 10

    doc = ok(run_cli("cat", "--repo", repo, "snapshot", snap["id"])).json()
    assert doc["id"] == snap["id"]
    assert doc["tree"] == snap["tree"]
    assert doc["paths"] == [str(src)]
    assert doc["summary"]["files_new"] == 4

    # walk down from the root tree to src with `cat tree`
    tree = snap["tree"]
    for part in src.parts[1:]:
        nodes = ok(run_cli("cat", "--repo", repo, "tree", tree)).json()["nodes"]
        (node,) = [n for n in nodes if n["name"] == part]
        assert node["type"] == "dir"
        tree = node["subtree"]
    nodes = ok(run_cli("cat", "--repo", repo, "tree", tree)).json()["nodes"]
    assert [n["name"] for n in nodes] == ["empty", "hello.txt", "link", "pipe", "sub"]
    hello = nodes[1]

    # blob: the raw bytes of a data blob
    (blob_id,) = hello["content"]
    res = ok(run_cli("cat", "--repo", repo, "blob", blob_id))
    assert res.out == "hello, world\n"

    # blob: binary content, through a real process so the bytes are not decoded
    (data_bin,) = [
        e for e in ls_json(run_cli, repo, "latest", src / "sub") if e["name"] == "data.bin"
    ]
    raw = b""
    for blob in data_bin["content"]:
        proc = subprocess.run(
            [*CAIRN, "cat", "--repo", repo, "blob", blob], capture_output=True, check=True
        )
        raw += proc.stdout
    assert raw == (src / "sub" / "data.bin").read_bytes()

    # index: lists the packs that hold the blobs, with their ids
    index_ids = sorted(p.name for p in (repo / "index").iterdir())
    listed: dict[str, str] = {}
    packs: set[str] = set()
    for index_id in index_ids:
        doc = ok(run_cli("cat", "--repo", repo, "index", index_id)).json()
        for pack in doc["packs"]:
            packs.add(pack["id"])
            for b in pack["blobs"]:
                assert b["length"] > 0 and b["raw_length"] >= 0 and b["offset"] >= 0
                listed[b["id"]] = pack["type"]
    assert packs == {p.name for p in (repo / "data").glob("*/*")}
    assert listed[blob_id] == "data"
    assert all(listed[b] == "data" for b in data_bin["content"])
    assert listed[snap["tree"]] == "tree"
    assert listed[tree] == "tree"
    # ...also by a prefix of its id
    short = ok(run_cli("cat", "--repo", repo, "index", index_ids[0][:10])).json()
    assert short == ok(run_cli("cat", "--repo", repo, "index", index_ids[0])).json()

    # key: the wrapped key file, with its KDF parameters
    (key_id,) = [p.name for p in (repo / "keys").iterdir()]
    for ref in (key_id, key_id[:6]):
        key = ok(run_cli("cat", "--repo", repo, "key", ref)).json()
        assert key["kdf"]["algorithm"] == "argon2id"
        assert key["kdf"]["memory_cost"] == FAST_KDF.memory_cost
        assert {"salt", "wrapped", "created"} <= set(key)


def test_cat_errors(repo, src, run_cli):
    backup(run_cli, repo, src)
    (entry,) = [e for e in ls_json(run_cli, repo, "latest", src) if e["name"] == "hello.txt"]
    cases = [
        (("tree", entry["content"][0]), "data blob"),  # a data blob is not a tree
        (("blob", "00" * 32), "not in the index"),
        (("blob", "xyz"), "not a blob id"),
        (("tree", "xyz"), "'xyz' is not a tree id"),  # a prefix of a tree id is taken
        (("key", "ffffffffff"), "no key"),
        (("index", "zz"), "'zz' is not an index id"),
        (("index", "ffffffffff"), "no index"),
        (("snapshot",), "needs an id"),
    ]
    for args, message in cases:
        res = run_cli("cat", "--repo", repo, *args)
        assert res.code != 0, args
        assert message in one_error_line(res.err), (args, res.err)
    res = run_cli("cat", "--repo", repo, "pack", "x")
    assert res.code != 0  # not a kind cat knows


# ------------------------------------------------------------------ repair snapshots
def test_a_repaired_snapshot_counts_what_it_holds(repo, src, run_cli):
    (src / "lose.bin").write_bytes(os.urandom(3 << 20))
    original = backup(run_cli, repo, src)["summary"]
    (lose,) = [e for e in ls_json(run_cli, repo, "latest", src) if e["name"] == "lose.bin"]
    r = Repository.open(LocalStorage(repo), PASSWORD.encode())
    r.load_index()
    pack = r.index.get(bytes.fromhex(lose["content"][-1])).pack.id.hex()
    (repo / "data" / pack[:2] / pack).unlink()
    ok(run_cli("repair", "index", "--repo", repo))
    ok(run_cli("repair", "snapshots", "--repo", repo, "--forget"))
    (snap,) = ok(run_cli("snapshots", "--repo", repo, "--json")).json()
    assert "repaired" in snap["tags"]
    held = [e for e in ls_json(run_cli, repo, "latest", "/") if e["type"] == "file"]
    assert "lose.bin" not in {e["name"] for e in held}
    s = snap["summary"]
    assert s["bytes_total"] == sum(e["size"] for e in held) < original["bytes_total"]
    assert s["files_new"] + s["files_changed"] + s["files_unchanged"] == len(held)
    assert s["errors"] >= 1  # the files removed are missing from the snapshot
    human = ok(run_cli("snapshots", "--repo", repo)).out
    assert format_bytes(s["bytes_total"]) in human
    assert format_bytes(original["bytes_total"]) not in human


# ------------------------------------------------------------------ stats
def test_stats(repo, src, run_cli):
    snap = backup(run_cli, repo, src)
    # a second snapshot with the same data adds no data blobs
    backup(run_cli, repo, src)

    doc = ok(run_cli("stats", "--repo", repo, "latest", "--json")).json()
    files = [p for p in src.rglob("*") if p.is_file() and not p.is_symlink()]
    assert doc["restore_size"] == sum(p.stat().st_size for p in files) == 300_020
    assert doc["files"] == len(files) == 4
    dirs = [e for e in ls_json(run_cli, repo, "latest") if e["type"] == "dir"]
    assert doc["dirs"] == len(dirs)
    contents = {c for e in ls_json(run_cli, repo, "latest") for c in e.get("content", [])}
    assert doc["unique_blobs"] == len(contents)
    assert doc["unique_raw"] == doc["restore_size"]  # no duplicate content in src

    repo_doc = ok(run_cli("stats", "--repo", repo, "--json")).json()
    on_disk = [p for p in repo.rglob("*") if p.is_file()]
    assert repo_doc["snapshots"] == 2
    assert repo_doc["objects"] == len(on_disk)
    assert repo_doc["stored_size"] == sum(p.stat().st_size for p in on_disk)
    assert repo_doc["packs"] == len(list((repo / "data").glob("*/*")))
    assert repo_doc["data_blobs"] == len(contents)
    assert repo_doc["data_raw"] == 300_020
    assert 0 < repo_doc["data_stored"] < repo_doc["stored_size"]
    assert repo_doc["tree_blobs"] >= snap["summary"]["tree_blobs_added"]
    assert repo_doc["compression_ratio"] > 0

    human = ok(run_cli("stats", "--repo", repo)).out
    assert "snapshots:     2" in human
    human = ok(run_cli("stats", "--repo", repo, snap["short_id"])).out
    assert f"{len(files)} files" in human


# ------------------------------------------------------------------ dry run
def test_backup_dry_run_writes_nothing(tmp_path, repo, src, run_cli):
    before = repo_listing(repo)
    doc = backup(run_cli, repo, "--dry-run", src)
    assert repo_listing(repo) == before
    assert doc["dry_run"] is True
    s = doc["summary"]
    assert s["files_new"] == 4
    assert s["bytes_read"] == s["bytes_total"] == 300_020
    assert s["data_blobs_added"] >= 3
    assert s["bytes_added"] >= 300_020
    assert s["requests"]["put"] == 0
    assert s["requests"]["delete"] == 0
    assert ok(run_cli("snapshots", "--repo", repo, "--json")).json() == []
    human = ok(run_cli("backup", "--repo", repo, "-n", src)).out
    assert "dry run" in human
    assert repo_listing(repo) == before

    # nothing was remembered either: the real backup reads and stores everything
    real = backup(run_cli, repo, src)["summary"]
    assert real["files_new"] == 4
    assert real["files_unchanged"] == 0
    assert real["data_blobs_added"] == s["data_blobs_added"]
    assert real["bytes_added"] == s["bytes_added"]

    # a dry run after it would add nothing
    again = backup(run_cli, repo, "-n", src)["summary"]
    assert again["data_blobs_added"] == again["tree_blobs_added"] == 0


# ------------------------------------------------------------------ paths that do not exist
def test_backup_of_a_missing_path_saves_nothing(tmp_path, repo, src, run_cli, cairn_proc):
    missing = tmp_path / "no" / "such" / "path"
    res = cairn_proc("backup", "--repo", repo, missing)
    assert res.code == 1, res
    assert str(missing) in one_error_line(res.err)
    assert snapshot_ids(run_cli, repo) == []
    # one missing path among several: nothing is saved either, and the error names it alone
    res = run_cli("backup", "--repo", repo, src, tmp_path / "gone", "--json")
    assert res.code == 1
    line = one_error_line(res.err)
    assert str(tmp_path / "gone") in line and str(src) not in line
    assert res.out == ""
    res = run_cli("backup", "--repo", repo, "--dry-run", src / "hello.txt" / "x")
    assert res.code == 1 and "hello.txt/x" in one_error_line(res.err)
    assert snapshot_ids(run_cli, repo) == []
    # a dangling symlink given as a path exists: it is backed up as a link
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    assert backup(run_cli, repo, tmp_path / "dangling")["paths"] == [str(tmp_path / "dangling")]


# ------------------------------------------------------------------ files that change
def _change_while_read(monkeypatch, victim: Path) -> None:  # type: ignore[no-untyped-def]
    """Whenever the backup has opened ``victim`` and looked at it, append to it: the file
    changes while it is being read (a hook around the system call, as in
    test_metadata_races)."""
    real_fstat = os.fstat

    def hooked_fstat(fd):  # type: ignore[no-untyped-def]
        st = real_fstat(fd)
        if isinstance(fd, int) and os.readlink(f"/proc/self/fd/{fd}") == str(victim):
            with open(victim, "ab") as f:
                f.write(b"more\n")
        return st

    monkeypatch.setattr(os, "fstat", hooked_fstat)


def test_a_file_changed_while_read_makes_the_backup_partial(repo, src, run_cli, monkeypatch):
    victim = src / "hello.txt"
    real_fstat = os.fstat
    _change_while_read(monkeypatch, victim)
    res = run_cli("backup", "--repo", repo, "--json", src)
    assert res.code == 3, res.err
    doc = res.json()
    assert doc["changed_while_read"] == [str(victim)]
    assert doc["summary"]["files_changed_while_read"] == 1
    assert doc["summary"]["errors"] == 0
    assert any(w["path"] == str(victim) for w in doc["warnings"])
    assert doc["id"]  # saved: the snapshot holds the file as read
    res = run_cli("backup", "--repo", repo, src)
    assert res.code == 3
    assert f"changed while read: 1 file, stored as read: {victim}" in res.out
    assert "1 file changed while being read" in res.err
    monkeypatch.setattr(os, "fstat", real_fstat)
    res = run_cli("backup", "--repo", repo, "--json", src)
    assert res.code == 0, res.err
    assert res.json()["changed_while_read"] == []


# ------------------------------------------------------------------ excludes
def exclude_tree(tmp_path: Path) -> Path:
    root = tmp_path / "ex"
    for d in ("sub/cache", "other", "deep", "p/deep/q", "notdeep", "s.tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in (
        "keep.txt",
        "a.tmp",
        "a.tmpl",
        "sub/x",
        "sub/xy",
        "sub/cache/inside",
        "other/cache",
        "other/x",
        "deep/a.log",
        "p/deep/b.log",
        "p/deep/b.txt",
        "p/deep/q/c.log",
        "notdeep/a.log",
        "s.tmp/inner",
    ):
        (root / f).write_text(f)
    return root


EXCLUDE_KEPT = {
    "keep.txt",
    "a.tmpl",
    "sub",
    "sub/xy",
    "other",
    "other/x",
    "deep",
    "p",
    "p/deep",
    "p/deep/b.txt",
    "p/deep/q",
    "p/deep/q/c.log",
    "notdeep",
    "notdeep/a.log",
}


def test_exclude_options(tmp_path, repo, run_cli):
    root = exclude_tree(tmp_path)
    patterns = ["*.tmp", "cache", f"{root}/sub/x", "**/deep/*.log"]
    args = [a for p in patterns for a in ("--exclude", p)]
    snap = backup(run_cli, repo, *args, root)
    assert listed_paths(run_cli, repo, snap["id"], root) == EXCLUDE_KEPT
    kept_files = [p for p in EXCLUDE_KEPT if (root / p).is_file()]
    assert len(kept_files) == 7
    assert snap["summary"]["files_new"] == 7
    assert snap["summary"]["bytes_total"] == sum(len(p) for p in kept_files)

    # the same patterns from a file, with comments and blank lines
    pattern_file = tmp_path / "excludes.txt"
    pattern_file.write_text("# build junk\n*.tmp\n\ncache\n" + f"  {root}/sub/x  \n**/deep/*.log\n")
    snap = backup(run_cli, repo, "--exclude-file", pattern_file, root)
    assert listed_paths(run_cli, repo, snap["id"], root) == EXCLUDE_KEPT

    # options and files combine
    half = tmp_path / "half.txt"
    half.write_text("*.tmp\ncache\n")
    snap = backup(
        run_cli, repo, "--exclude-file", half, "-e", f"{root}/sub/x", "-e", "**/deep/*.log", root
    )
    assert listed_paths(run_cli, repo, snap["id"], root) == EXCLUDE_KEPT

    # without excludes, everything is there
    snap = backup(run_cli, repo, root)
    excluded = {
        "a.tmp",
        "s.tmp",
        "s.tmp/inner",
        "sub/x",
        "sub/cache",
        "sub/cache/inside",
        "other/cache",
        "deep/a.log",
        "p/deep/b.log",
    }
    assert listed_paths(run_cli, repo, snap["id"], root) == EXCLUDE_KEPT | excluded

    res = run_cli("backup", "--repo", repo, "--exclude-file", tmp_path / "nope", root)
    assert res.code != 0
    assert "exclude file" in one_error_line(res.err)


def test_one_file_system(tmp_path, repo, run_cli):
    root = tmp_path / "fs"
    mnt = root / "mnt"
    mnt.mkdir(parents=True)
    (root / "here.txt").write_text("same file system\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
    try:
        (mnt / "there.txt").write_text("another file system\n")
        (mnt / "dir").mkdir()
        (mnt / "dir" / "deeper.txt").write_text("x")
        assert mnt.stat().st_dev != root.stat().st_dev

        snap = backup(run_cli, repo, "--one-file-system", root)
        assert listed_paths(run_cli, repo, snap["id"], root) == {"here.txt", "mnt"}
        (entry,) = [e for e in ls_json(run_cli, repo, snap["id"], root) if e["name"] == "mnt"]
        assert entry["type"] == "dir"
        assert snap["summary"]["files_new"] == 1

        snap = backup(run_cli, repo, root)  # without -x the mount is crossed
        assert listed_paths(run_cli, repo, snap["id"], root) == {
            "here.txt",
            "mnt",
            "mnt/there.txt",
            "mnt/dir",
            "mnt/dir/deeper.txt",
        }
    finally:
        subprocess.run(["umount", mnt], check=True)


# ------------------------------------------------------------------ passwords
def test_password_file(tmp_path, repo, run_cli, monkeypatch):
    monkeypatch.delenv("CAIRN_PASSWORD")
    good, bad = tmp_path / "pw", tmp_path / "wrong"
    good.write_text(PASSWORD + "\n")
    bad.write_text("not the password\n")
    assert ok(run_cli("snapshots", "--repo", repo, "--password-file", good, "--json")).json() == []
    res = run_cli("snapshots", "--repo", repo, "--password-file", bad)
    assert res.code == 1
    assert "wrong password" in one_error_line(res.err)
    res = run_cli("snapshots", "--repo", repo, "--password-file", tmp_path / "missing")
    assert res.code != 0
    assert "password file" in one_error_line(res.err)
    # the option wins over the environment
    monkeypatch.setenv("CAIRN_PASSWORD", "not the password")
    ok(run_cli("snapshots", "--repo", repo, "--password-file", good))


def test_password_command(tmp_path, repo, run_cli, monkeypatch):
    monkeypatch.delenv("CAIRN_PASSWORD")
    cmd = shlex.join([sys.executable, "-c", f"print({PASSWORD!r})"])
    assert (
        ok(run_cli("snapshots", "--repo", repo, "--password-command", cmd, "--json")).json() == []
    )
    failing = shlex.join([sys.executable, "-c", "raise SystemExit(3)"])
    res = run_cli("snapshots", "--repo", repo, "--password-command", failing)
    assert res.code != 0
    assert "password command" in one_error_line(res.err)


def test_password_file_from_environment(tmp_path, repo, run_cli, monkeypatch):
    monkeypatch.delenv("CAIRN_PASSWORD")
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    monkeypatch.setenv("CAIRN_PASSWORD_FILE", str(pw))
    assert ok(run_cli("snapshots", "--repo", repo, "--json")).json() == []


def test_init_with_password_file_and_open_with_environment(tmp_path, run_cli, monkeypatch):
    monkeypatch.delenv("CAIRN_PASSWORD")
    pw = tmp_path / "pw"
    pw.write_text("another secret\n")
    ok(run_cli("init", "--repo", tmp_path / "r", "--password-file", pw))
    monkeypatch.setenv("CAIRN_PASSWORD", "another secret")
    assert ok(run_cli("snapshots", "--repo", tmp_path / "r", "--json")).json() == []


def test_no_password_without_a_terminal_is_a_clear_error(tmp_path, repo, cairn_proc, monkeypatch):
    monkeypatch.delenv("CAIRN_PASSWORD")
    monkeypatch.delenv("CAIRN_PASSWORD_FILE", raising=False)
    res = cairn_proc("snapshots", "--repo", repo, input=b"")
    assert res.code != 0
    assert "no password" in one_error_line(res.err)
    res = cairn_proc("init", "--repo", tmp_path / "new", input=b"")
    assert res.code != 0
    assert "no password" in one_error_line(res.err)
    assert not (tmp_path / "new" / "config").exists()


# ------------------------------------------------------------------ where the repository is
def test_repository_from_environment(tmp_path, repo, src, run_cli, monkeypatch):
    monkeypatch.setenv("CAIRN_REPOSITORY", str(repo))
    snap = ok(run_cli("backup", "--json", src)).json()
    assert [s["id"] for s in ok(run_cli("snapshots", "--json")).json()] == [snap["id"]]
    assert ok(run_cli("ls", "latest", src / "hello.txt")).out == f"{src}/hello.txt\n"
    # --repo wins over the environment
    monkeypatch.setenv("CAIRN_REPOSITORY", str(tmp_path / "nowhere"))
    assert ok(run_cli("snapshots", "--repo", repo, "--json")).json()[0]["id"] == snap["id"]


def test_relative_paths_are_recorded_as_absolute(tmp_path, repo, src, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snap = backup(run_cli, repo, "src/./sub/../sub")
    assert snap["paths"] == [str(src / "sub")]
    assert snapshot_ids(run_cli, repo, "--path", str(src / "sub")) == [snap["id"]]
    assert "data.bin" in listed_paths(run_cli, repo, "latest", src / "sub")


def test_no_repository_given(run_cli):
    res = run_cli("snapshots")
    assert res.code != 0
    assert "no repository" in one_error_line(res.err)


def test_missing_repository_is_a_one_line_error(tmp_path, run_cli, cairn_proc):
    missing = tmp_path / "does" / "not" / "exist"
    for args in (("snapshots",), ("ls", "latest"), ("stats",), ("cat", "config")):
        res = run_cli(args[0], "--repo", missing, *args[1:])
        assert res.code == 1, (args, res.err)
        assert str(missing) in one_error_line(res.err)
        assert res.out == ""
    src = tmp_path / "s"
    src.mkdir()
    res = cairn_proc("backup", "--repo", missing, src)
    assert res.code == 1
    assert str(missing) in one_error_line(res.err)
    assert not missing.exists()
    # a directory that exists but is not a repository
    res = cairn_proc("snapshots", "--repo", src)
    assert res.code == 1
    assert "not a cairn repository" in one_error_line(res.err)


def test_the_command_leaves_its_objects_frozen_to_the_process_end(monkeypatch):
    """``cairn`` (the console script) freezes what is alive once the command is done, so the
    interpreter's teardown does not collect it (0.1 to 0.2 s of every command), and exits with
    the command's code."""
    import gc

    from cairn.cli import main as cli_main_module

    calls: list[str] = []
    monkeypatch.setattr(cli_main_module, "main", lambda: calls.append("main") or 3)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    with pytest.raises(SystemExit) as exit_:
        cli_main_module.entry()
    assert exit_.value.code == 3
    assert calls == ["main", "freeze"]
