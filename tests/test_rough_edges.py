"""What a new user runs into first: a mistyped S3 endpoint, errors with --json, `cat tree` by
an id prefix. Commands run as a separate process where the process matters (time, stderr)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.repo import layout
from tests.craft import create_repo, open_repo

AWS = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- a mistyped endpoint
def test_a_refused_endpoint_fails_at_once_naming_it(cairn_proc) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    res = cairn_proc("snapshots", "--repo", f"s3:http://127.0.0.1:{port}/bucket", env=AWS)
    took = time.monotonic() - started
    assert res.code != 0 and "Traceback" not in res.err, res.err
    assert res.err.splitlines() == [
        f"cairn: error: cannot reach http://127.0.0.1:{port}: connection refused, and nothing "
        "has answered there (is the endpoint right?)"
    ]
    assert took < 5, took


@pytest.fixture
def hanging_up() -> Iterator[int]:
    """A port whose server accepts every connection and closes it at once (a store that
    answers nothing): connections are made, so each failure is retried."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


def test_every_retry_is_told_on_stderr(cairn_proc, hanging_up) -> None:  # type: ignore[no-untyped-def]
    url = f"s3:http://127.0.0.1:{hanging_up}/bucket"
    res = cairn_proc("snapshots", "--repo", url, "--retries", "3", env=AWS)
    assert res.code != 0 and "Traceback" not in res.err, res.err
    *retries, last = res.err.splitlines()
    # the requests opening a repository go out together: each one's retries, in its order
    for name in ("config", "keys/"):
        told = [line for line in retries if line.startswith(f"warning: {name}: ")]
        assert len(told) in (1, 2), res.err  # the second of one may follow the other's end
        for n, line in enumerate(told, 1):
            assert "cannot reach the store" in line and f"127.0.0.1:{hanging_up}" in line
            assert re.search(rf"; retrying in \d+\.\d s \({n}/3\)$", line), line
    assert len(retries) >= 3, res.err
    assert last.startswith("cairn: error: ") and last.endswith("(gave up after 3 attempts)")


# ---------------------------------------------------------------------- errors with --json
def test_errors_are_json_with_json(tmp_path: Path, cairn_proc) -> None:  # type: ignore[no-untyped-def]
    repo = create_repo(tmp_path / "repo")
    res = cairn_proc("snapshots", "--repo", repo, "--json", env={"CAIRN_PASSWORD": "wrong"})
    assert res.code == 1 and res.out == ""
    doc = json.loads(res.err)
    assert doc == {"error": doc["error"], "exit_code": 1} and "password" in doc["error"]

    missing = tmp_path / "nope"
    res = cairn_proc("snapshots", "--repo", missing, "--json")
    assert res.code == 1 and res.out == ""
    assert json.loads(res.err) == {
        "error": f"repository directory {missing} does not exist",
        "exit_code": 1,
    }
    # a mistyped option too; without --json, the same errors stay text
    res = cairn_proc("snapshots", "--repo", repo, "--json", "--lastest")
    assert res.code == 2 and json.loads(res.err)["exit_code"] == 2
    res = cairn_proc("snapshots", "--repo", missing)
    assert res.err == f"cairn: error: repository directory {missing} does not exist\n"


# ---------------------------------------------------------------------- cat tree by prefix
def test_cat_tree_takes_a_unique_prefix(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    repo = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    for i in range(40):  # 40 directories: more trees than hex digits, so some share the first
        (src / f"d{i:02d}").mkdir(parents=True)
        (src / f"d{i:02d}" / "f").write_text(str(i))
    res = run_cli("backup", "--repo", repo, src)
    assert res.code == 0, res.err
    root = run_cli("cat", "--repo", repo, "snapshot", "latest").json()["tree"]
    full = run_cli("cat", "--repo", repo, "tree", root)
    assert full.code == 0, full.err
    short = run_cli("cat", "--repo", repo, "tree", root[:10].upper())
    assert short.code == 0, short.err
    assert short.out == full.out

    index = open_repo(repo).index
    trees = sorted(
        b.hex() for b in index.blob_ids() if index.get(b).pack.blob_type == layout.TREE_BLOB
    )
    by_first: dict[str, list[str]] = {}
    for t in trees:
        by_first.setdefault(t[0], []).append(t)
    digit, shared = next((d, ids) for d, ids in sorted(by_first.items()) if len(ids) > 1)
    res = run_cli("cat", "--repo", repo, "tree", digit)
    assert res.code == 2, res.err
    assert f"tree id prefix {digit} is ambiguous: " in res.err
    assert all(t[:9] in res.err for t in shared[:10])

    res = run_cli("cat", "--repo", repo, "tree", "xyz")
    assert res.code == 2 and "'xyz' is not a tree id" in res.err, res.err
    # a data blob is not a tree: its id, or a prefix of it, names no tree
    data = next(
        b.hex() for b in index.blob_ids() if index.get(b).pack.blob_type == layout.DATA_BLOB
    )
    if not any(t.startswith(data[:12]) for t in trees):
        res = run_cli("cat", "--repo", repo, "tree", data[:12])
        assert res.code == 1 and f"no tree with id {data[:12]}" in res.err, res.err


# ---------------------------------------------------------------------- the snapshots table
@pytest.fixture
def three_snapshots(tmp_path: Path, run_cli) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    """Two hosts; one of them with a long name, tags and a path far longer than 80 columns."""
    repo = create_repo(tmp_path / "repo")
    deep = tmp_path / ("a-directory-with-a-name-long-enough-to-need-shortening-" * 2) / "docs"
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    for host, path, tags in (
        ("a-build-server.with-a-long-domain.example.org", deep, ("daily,important",)),
        ("laptop", other, ()),
        ("a-build-server.with-a-long-domain.example.org", deep, ("daily,important",)),
    ):
        tag_args = [a for t in tags for a in ("--tag", t)]
        res = run_cli("backup", "--repo", repo, "--host", host, *tag_args, path)
        assert res.code == 0, res.err
    return repo, deep, other


def test_the_snapshots_table_fits_80_columns(three_snapshots, cairn_proc) -> None:  # type: ignore[no-untyped-def]
    repo, deep, _ = three_snapshots
    ids = [s["id"][:8] for s in json.loads(cairn_proc("snapshots", "--repo", repo, "--json").out)]
    res = cairn_proc("snapshots", "--repo", repo, env={"COLUMNS": "80"})
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert max(len(ln) for ln in lines) <= 80, res.out
    assert lines[0].split() == ["ID", "Time", "Host", "Tags", "Paths", "Size"]
    rows = lines[1:-1]
    assert [r.split()[0] for r in rows] == ids and lines[-1] == "3 snapshots"
    assert rows[1].split()[3] == "laptop"  # shortened only where too long
    path = rows[0].split()[-3]
    # the middle is elided: what is left is the path's own head and tail, wherever the tests run
    head, _, tail = path.partition("\u2026")
    assert _ and str(deep).startswith(head) and str(deep).endswith(tail) and tail.endswith("/docs")
    assert head.startswith("/") and len(head) >= 4
    assert len(path) >= 16 and rows[0].endswith(" 1 B")
    # where the width is not known (a pipe, no $COLUMNS), nothing is shortened
    res = cairn_proc("snapshots", "--repo", repo, env={"COLUMNS": ""})
    assert res.code == 0 and str(deep) in res.out and "\u2026" not in res.out


def test_snapshots_group_by(three_snapshots, cairn_proc) -> None:  # type: ignore[no-untyped-def]
    repo, deep, other = three_snapshots
    res = cairn_proc("snapshots", "--repo", repo, "--group-by", "host,paths,tags")
    assert res.code == 0, res.err
    server = "a-build-server.with-a-long-domain.example.org"
    blocks = res.out.rstrip("\n").split("\n\n")
    assert len(blocks) == 3 and blocks[-1] == "3 snapshots", res.out
    assert blocks[0].splitlines()[0] == f"host {server}, paths [{deep}], tags [daily, important]:"
    assert len(blocks[0].splitlines()) == 4  # heading, column titles, two snapshots
    assert blocks[1].splitlines()[0] == f"host laptop, paths [{other}], tags []:"
    assert len(blocks[1].splitlines()) == 3

    doc = json.loads(cairn_proc("snapshots", "--repo", repo, "--group-by", "host", "--json").out)
    assert [(g["group_key"], len(g["snapshots"])) for g in doc] == [
        ({"host": server, "paths": None, "tags": None}, 2),
        ({"host": "laptop", "paths": None, "tags": None}, 1),
    ]
    res = cairn_proc("snapshots", "--repo", repo, "--group-by", "host", "--compact")
    assert res.out.splitlines()[0] == f"host {server}:"
    res = cairn_proc("snapshots", "--repo", repo, "--group-by", "colour")
    assert res.code == 2 and res.err == (
        "cairn: error: cannot group by colour (use host, paths, tags)\n"
    )
