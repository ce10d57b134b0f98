"""Names with terminal escape sequences, control characters and bytes that are not UTF-8, in
file names, snapshot paths, tags, hosts and key files: human output shows them escaped (never
raw), JSON output keeps them exactly."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cairn.model.snapshot import Snapshot
from tests.craft import Crafter, create_repo, open_repo

ESC_TITLE = b"\x1b]0;owned\x07"  # sets the terminal's title
ESC_CLEAR = b"\x1b[2J"  # clears the screen
NAMES = {
    b"title" + ESC_TITLE: "title\\x1b]0;owned\\x07",
    b"clear" + ESC_CLEAR: "clear\\x1b[2J",
    b"line\rover": "line\\rover",
    b"two\nlines": "two\\nlines",
    b"latin1-\xe9t\xe9": "latin1-\\xe9t\\xe9",
    b"c1-\xc2\x9b31m": "c1-\\u009b31m",  # U+009B, the one-character CSI
    b"back\\slash": "back\\\\slash",
    "caf\u00e9 ok".encode(): "caf\u00e9 ok",
}
RAW = ("\x1b", "\r", "\x07", "\x9b", "\udce9")


def assert_clean(text: str) -> None:
    for c in RAW:
        assert c not in text, (c, text)


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, str]:
    """A repository with one snapshot of a directory holding every name of NAMES, a symlink
    whose target has an escape, and hostile host, tags and path."""
    repo_dir = create_repo(tmp_path / "repo")
    repo = open_repo(repo_dir)
    c = Crafter(repo)
    nodes = [c.file(name, b"x") for name in NAMES]
    nodes.append(c.symlink(b"link", b"to" + ESC_CLEAR))
    tree = c.tree([c.dir(b"d", nodes)])
    c.flush()
    snap = Snapshot(
        time=datetime.now(UTC),
        host="host" + ESC_TITLE.decode(),
        user="u",
        paths=[os.fsdecode(b"/path" + ESC_CLEAR + b"\xff")],
        tree=tree,
        tags=["tag" + ESC_CLEAR.decode(), "ok"],
    )
    snap_id = repo.save_snapshot(snap.encode())
    c.close()
    return repo_dir, snap_id


def test_ls_escapes_names_and_json_keeps_them(crafted, cairn_proc):
    repo, snap_id = crafted
    for args in ([], ["-l"]):
        res = cairn_proc("ls", "--repo", repo, snap_id, *args)
        assert res.code == 0, res.err
        assert_clean(res.out)
        for shown in NAMES.values():
            assert f"/d/{shown}" in res.out
        assert len(res.out.splitlines()) == 2 + len(NAMES)  # one line per entry
    assert "-> to\\x1b[2J" in cairn_proc("ls", "--repo", repo, snap_id, "-l").out
    docs = [
        json.loads(line)
        for line in cairn_proc("ls", "--repo", repo, snap_id, "--json").out.splitlines()
    ]
    names = {os.fsencode(d["name"]) for d in docs}
    assert set(NAMES) <= names  # exact, every byte


def test_snapshots_and_forget_tables_escape_host_tags_and_paths(crafted, cairn_proc):
    repo, _ = crafted
    for args in (["snapshots"], ["forget", "--keep-last", "1", "--dry-run"]):
        res = cairn_proc(*args, "--repo", repo)
        assert res.code == 0, res.err
        assert_clean(res.out + res.err)
        flat = res.out.replace("\n", "").replace(" ", "")
        for shown in ("host\\x1b]", "tag\\x1b[2J", "/path\\x1b["):  # wide cells are cut
            assert shown.replace(" ", "") in flat, (shown, res.out)
    doc = json.loads(cairn_proc("snapshots", "--repo", repo, "--json").out)[0]
    assert doc["hostname" if "hostname" in doc else "host"] == "host" + ESC_TITLE.decode()


def test_restore_and_check_messages_escape_names(crafted, tmp_path, cairn_proc):
    repo, snap_id = crafted
    # a restore into a target where one name is taken by a directory: its warning names it
    target = tmp_path / "out"
    blocked = target / "d" / os.fsdecode(b"line\rover")
    (blocked / "inside").mkdir(parents=True)
    res = cairn_proc("restore", "--repo", repo, snap_id, "--target", target)
    assert res.code == 1 and "line\\rover" in res.err
    assert_clean(res.out + res.err)
    # check names the damaged files of a snapshot whose data pack is gone
    r = open_repo(repo)
    for info in r.index.packs:
        if info.blob_type == 0:
            (repo / "data" / info.id.hex()[:2] / info.id.hex()).unlink()
    res = cairn_proc("check", "--repo", repo)
    assert res.code == 1
    assert_clean(res.out + res.err)
    assert "/d/title\\x1b]0;owned\\x07" in res.out


def test_key_list_escapes_host_and_user(tmp_path, cairn_proc):
    repo = create_repo(tmp_path / "repo")
    key = next((repo / "keys").iterdir())
    doc = json.loads(key.read_bytes())
    doc["host"], doc["username"] = "h" + ESC_CLEAR.decode(), "u\r"
    (repo / "keys" / ("0" * 64)).write_text(json.dumps(doc))
    res = cairn_proc("key", "list", "--repo", repo)
    assert res.code == 0, res.err
    assert_clean(res.out)
    assert "h\\x1b[2J" in res.out and "u\\r" in res.out


def test_printable_and_safe_text():
    from cairn.ui.escape import printable, safe_text

    for raw, shown in NAMES.items():
        assert printable(raw) == shown
        assert printable(os.fsdecode(raw)) == shown
    assert printable("") == ""
    assert safe_text("a\\b\x1b") == "a\\b\\x1b"  # backslashes stay: text may be escaped already
    assert safe_text(printable(b"x\x1by\\")) == printable(b"x\x1by\\")
    assert safe_text("one\ntwo\x1b", keep="\n") == "one\ntwo\\x1b"
