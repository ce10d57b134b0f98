"""Jobs that dump real servers (PostgreSQL, MariaDB, Subversion, SQLite) into snapshots, and
restores from those snapshots through `cairn dump ... |` into the real tools."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.ops.snapshots import find_node, load_snapshots
from tests.craft import PASSWORD, create_repo, open_repo
from tests.dbservers import MariaDB, Postgres

CAIRN = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "cairn"])


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    server = Postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaDB]:
    server = MariaDB()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return create_repo(tmp_path / "repo")


def write_config(tmp_path: Path, repo: Path, jobs: str) -> Path:
    pw = tmp_path / "password"
    pw.write_bytes(PASSWORD + b"\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[repositories.main]\nurl = "{repo}"\npassword-file = "password"\n\n{jobs}')
    return cfg


def sh(command: str) -> str:
    """Runs a shell pipeline as a person would; fails the test if any part of it fails."""
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"{command}: {proc.stderr}"
    return proc.stdout


def snapshot_paths(repo: Path) -> list[list[str]]:
    return [s.paths for s in load_snapshots(open_repo(repo, load_index=False))]


# ---------------------------------------------------------------------- PostgreSQL
def make_shop(pg: Postgres, db: str) -> None:
    pg.psql(f"CREATE DATABASE {db}")
    pg.psql(
        """
        CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2),
                            photo bytea, tags text[], added timestamptz DEFAULT now());
        INSERT INTO items (name, price, photo, tags)
            SELECT 'item ' || i || ' ☃', i * 1.25, decode(md5(i::text), 'hex'), ARRAY['a', 'b' || i]
            FROM generate_series(1, 20000) AS i;
        CREATE VIEW cheap AS SELECT name FROM items WHERE price < 10;
        CREATE INDEX items_name ON items (name);
        COMMENT ON TABLE items IS 'what we sell';
        """,
        db=db,
    )


def test_postgres_job_dumps_each_database_and_restores_with_psql(
    pg: Postgres, repo: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    make_shop(pg, "shop")
    pg.psql("CREATE DATABASE crm")
    pg.psql("CREATE TABLE people (name text); INSERT INTO people VALUES ('Ada')", db="crm")
    cfg = write_config(
        tmp_path,
        repo,
        f"""
[jobs.db]
repository = "main"
tags = ["postgres"]
[jobs.db.source]
kind = "postgres"
host = "{pg.socket_dir}"
user = "postgres"
bin-dir = "{pg.bin}"
[jobs.db.retention]
keep-last = 2
""",
    )
    before = pg.pg_dump("shop")
    rows = pg.psql(
        "SELECT count(*), sum(price), md5(string_agg(name, ',' ORDER BY id)) FROM items", "shop"
    )
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 0, res.err
    job = res.json()["jobs"][0]
    assert job["status"] == "ok"
    assert job["snapshot"]["paths"] == ["/crm.sql", "/postgres.sql", "/shop.sql"]
    assert sorted(job["snapshot"]["tags"]) == ["job:db", "postgres"]

    pg.psql("DROP DATABASE shop")
    pg.psql("CREATE DATABASE shop")
    psql = f"{pg.bin}/psql -X -q -v ON_ERROR_STOP=1 -h {pg.socket_dir} -U postgres"
    sh(
        f"{CAIRN} dump -r {repo} --password-file {tmp_path / 'password'} latest shop.sql | {psql} shop"
    )
    assert pg.pg_dump("shop") == before
    assert (
        pg.psql(
            "SELECT count(*), sum(price), md5(string_agg(name, ',' ORDER BY id)) FROM items", "shop"
        )
        == rows
    )
    assert pg.psql("SELECT * FROM people", "crm") == "Ada\n"


def test_postgres_dumpall_and_explicit_databases(
    pg: Postgres, repo: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    make_shop(pg, "store")
    common = f'host = "{pg.socket_dir}"\nuser = "postgres"\nbin-dir = "{pg.bin}"\n'
    cfg = write_config(
        tmp_path,
        repo,
        f"""
[jobs.all]
repository = "main"
source = {{ kind = "postgres", dumpall = true, {common.strip().replace(chr(10), ", ")} }}

[jobs.one]
repository = "main"
[jobs.one.source]
kind = "postgres"
databases = ["store"]
options = ["--no-owner"]
{common}
""",
    )
    res = run_cli("run", "--config", cfg)
    assert res.code == 0, res.err
    r = open_repo(repo)
    snaps = {tuple(s.paths): s for s in load_snapshots(r)}
    assert set(snaps) == {("/pg_dumpall.sql",), ("/store.sql",)}
    out = subprocess.run(
        [sys.executable, "-m", "cairn", "dump", "-r", str(repo), "--tag", "job:all", "latest", "pg_dumpall.sql"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert b"CREATE DATABASE store" in out and b"CREATE ROLE postgres" in out
    one = subprocess.run(
        [sys.executable, "-m", "cairn", "dump", "-r", str(repo), "--tag", "job:one", "latest", "store.sql"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert b"OWNER TO" not in one and b"COPY public.items" in one


def test_failing_pg_dump_saves_nothing_and_fails_the_run(
    pg: Postgres, repo: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(
        tmp_path,
        repo,
        f"""
[jobs.missing]
repository = "main"
source = {{ kind = "postgres", databases = ["postgres", "nope"], host = "{pg.socket_dir}", user = "postgres", bin-dir = "{pg.bin}" }}

[jobs.down]
repository = "main"
source = {{ kind = "postgres", host = "{tmp_path}", bin-dir = "{pg.bin}" }}
""",
    )
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 1
    missing, down = res.json()["jobs"]
    assert missing["status"] == down["status"] == "failed"
    assert missing["error"].startswith("pg_dump exited with status 1: ")
    assert 'database "nope" does not exist' in missing["error"]
    assert down["error"].startswith("psql exited with status 2: ")
    assert 'database "nope" does not exist' in res.err  # pg_dump's stderr is shown
    assert snapshot_paths(repo) == []


# ---------------------------------------------------------------------- MariaDB
def test_mariadb_job_dumps_in_one_transaction_and_restores(
    maria: MariaDB, repo: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    maria.sql("CREATE DATABASE shop")
    maria.sql("SET GLOBAL group_concat_max_len = 1000000")
    maria.sql(
        "CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100), data BLOB) ENGINE=InnoDB;"
        "INSERT INTO items (name, data) SELECT CONCAT('item ', seq, ' ☃'), UNHEX(MD5(seq)) FROM seq_1_to_5000;"
        "CREATE VIEW few AS SELECT name FROM items WHERE id < 10;"
        "CREATE TRIGGER t BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name);",
        db="shop",
    )
    maria.sql("CREATE DATABASE `odd/name`")
    maria.sql("CREATE TABLE x (v INT); INSERT INTO x VALUES (7)", db="odd/name")
    cfg = write_config(
        tmp_path,
        repo,
        f"""
[jobs.maria]
repository = "main"
[jobs.maria.source]
kind = "mysql"
socket = "{maria.socket}"
user = "root"

[jobs.everything]
repository = "main"
source = {{ kind = "mysql", all-databases = true, socket = "{maria.socket}", user = "root" }}
""",
    )
    before = maria.dump("shop")
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 0, res.err
    maria_job, everything = res.json()["jobs"]
    assert maria_job["snapshot"]["paths"] == ["/odd%2Fname.sql", "/shop.sql"]
    assert everything["snapshot"]["paths"] == ["/all-databases.sql"]
    whole = sh(f"{CAIRN} dump -r {repo} --tag job:everything latest all-databases.sql")
    assert "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`" in whole
    assert "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `odd/name`" in whole
    maria.sql("DROP DATABASE shop; CREATE DATABASE shop")
    client = f"mariadb --no-defaults --socket={maria.socket} -u root"
    sh(
        f"{CAIRN} dump -r {repo} --password-file {tmp_path / 'password'} --tag job:maria latest /shop.sql | {client} shop"
    )
    assert maria.dump("shop") == before
    assert maria.sql("SELECT COUNT(*), MD5(GROUP_CONCAT(name ORDER BY id)) FROM items", "shop") == (
        maria.sql(
            "SELECT 5000, MD5(GROUP_CONCAT(CONCAT('item ', seq, ' ☃') ORDER BY seq)) FROM seq_1_to_5000",
            "shop",
        )
    )


def test_failing_mariadb_dump_saves_nothing(
    maria: MariaDB, repo: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(
        tmp_path,
        repo,
        f'[jobs.m]\nrepository = "main"\nsource = {{ kind = "mysql", socket = "{maria.socket}", user = "root", databases = ["absent"] }}\n',
    )
    res = run_cli("run", "--config", cfg)
    assert res.code == 1
    assert "mariadb-dump exited with status 2" in res.err
    assert "Unknown database" in res.err
    assert snapshot_paths(repo) == []


# ---------------------------------------------------------------------- Subversion
def make_svn_repo(path: Path, files: dict[str, bytes]) -> None:
    subprocess.run(["svnadmin", "create", str(path)], check=True)
    url = f"file://{path}"
    for i, (name, content) in enumerate(files.items()):
        src = path.parent / f"put-{path.name}-{i}"
        src.write_bytes(content)
        subprocess.run(
            ["svnmucc", "-m", f"add {name}", "-U", url, "put", str(src), name,
             "propset", "color", f"c{i}", name],
            check=True, capture_output=True,
        )  # fmt: skip


def svn_dump(path: Path) -> bytes:
    return subprocess.run(
        ["svnadmin", "dump", "-q", str(path)], capture_output=True, check=True
    ).stdout


def test_svn_job_dumps_every_repository_and_restores_with_svnadmin_load(
    repo: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    parent = tmp_path / "svn"
    parent.mkdir()
    make_svn_repo(
        parent / "alpha", {"a.txt": b"alpha\n", "bin.dat": os.urandom(200_000), "b.txt": b"b\n"}
    )
    make_svn_repo(parent / "beta", {"readme": b"beta\n"})
    (parent / "not-a-repo").mkdir()
    cfg = write_config(
        tmp_path,
        repo,
        f"""
[jobs.svn]
repository = "main"
source = {{ kind = "svn", parent = "{parent}" }}

[jobs.one]
repository = "main"
source = {{ kind = "svn", repository = "{parent / "beta"}" }}
""",
    )
    before = svn_dump(parent / "alpha")
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 0, res.err
    jobs = {j["job"]: j for j in res.json()["jobs"]}
    assert jobs["svn"]["snapshot"]["paths"] == ["/alpha.svndump", "/beta.svndump"]
    assert jobs["one"]["snapshot"]["paths"] == ["/beta.svndump"]

    subprocess.run(["rm", "-rf", str(parent / "alpha")], check=True)
    subprocess.run(["svnadmin", "create", str(parent / "alpha")], check=True)
    sh(
        f"{CAIRN} dump -r {repo} --password-file {tmp_path / 'password'} --tag job:svn latest alpha.svndump"
        f" | svnadmin load -q {parent / 'alpha'}"
    )
    assert svn_dump(parent / "alpha") == before
    cat = sh(f"svn cat file://{parent / 'alpha'}/a.txt")
    assert cat == "alpha\n"


def test_svn_job_without_repositories_fails(repo: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty").mkdir()
    cfg = write_config(
        tmp_path,
        repo,
        f'[jobs.s]\nrepository = "main"\nsource = {{ kind = "svn", parent = "{tmp_path / "empty"}" }}\n',
    )
    res = run_cli("run", "--config", cfg)
    assert res.code == 1
    assert "no Subversion repository in" in res.err
    assert snapshot_paths(repo) == []


# ---------------------------------------------------------------------- SQLite
def test_sqlite_dump_is_consistent_while_a_writer_commits(
    repo: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "app.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)")
    con.execute("CREATE TABLE lines (order_id INTEGER, n INTEGER)")
    con.execute("INSERT INTO orders (note) VALUES (CAST(X'FF41' AS TEXT))")  # not UTF-8
    con.execute("INSERT INTO lines VALUES (1, 1)")
    for i in range(2000):
        con.execute("INSERT INTO lines VALUES (?, ?)", (1, i))
    stop = threading.Event()

    def writer() -> None:
        w = sqlite3.connect(db, isolation_level=None, timeout=30)
        while not stop.is_set():
            w.execute("BEGIN IMMEDIATE")
            oid = w.execute("INSERT INTO orders (note) VALUES ('x')").lastrowid
            w.execute("INSERT INTO lines VALUES (?, 1)", (oid,))  # invariant: one line per order
            w.execute("COMMIT")
        w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        cfg = write_config(
            tmp_path,
            repo,
            f'[jobs.lite]\nrepository = "main"\nsource = {{ kind = "sqlite", path = "{db}" }}\n',
        )
        res = run_cli("run", "--config", cfg, "--json")
    finally:
        stop.set()
        thread.join()
    assert res.code == 0, res.err
    assert res.json()["jobs"][0]["snapshot"]["paths"] == ["/app.sql"]
    restored = tmp_path / "restored.db"
    sh(
        f"{CAIRN} dump -r {repo} --password-file {tmp_path / 'password'} latest app.sql | sqlite3 {restored}"
    )
    r = sqlite3.connect(restored)
    r.text_factory = bytes
    orders = r.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert orders >= 1
    missing = r.execute(
        "SELECT count(*) FROM orders WHERE id > 1 AND id NOT IN (SELECT order_id FROM lines)"
    ).fetchone()[0]
    assert missing == 0  # every committed order came with its line: one snapshot of the database
    assert r.execute("SELECT count(*) FROM lines WHERE order_id = 1").fetchone()[0] == 2001
    assert r.execute("SELECT note FROM orders WHERE id = 1").fetchone()[0] == b"\xffA"
    # The live database was not touched (no file created next to it but SQLite's own).
    assert sorted(p.name for p in tmp_path.glob("app.db*")) <= [
        "app.db",
        "app.db-shm",
        "app.db-wal",
    ]


def test_sqlite_missing_database_fails_without_creating_it(
    repo: Path, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "nope.db"
    cfg = write_config(
        tmp_path,
        repo,
        f'[jobs.lite]\nrepository = "main"\nsource = {{ kind = "sqlite", path = "{db}" }}\n',
    )
    res = run_cli("run", "--config", cfg)
    assert res.code == 1
    assert f"sqlite database {db} does not exist" in res.err
    assert not db.exists()
    assert snapshot_paths(repo) == []


def test_command_job_with_a_chosen_file_name(repo: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(
        tmp_path,
        repo,
        '[jobs.etc]\nrepository = "main"\n'
        'source = { kind = "command", command = ["sh", "-c", "printf hello"], filename = "etc/hello.txt" }\n',
    )
    res = run_cli("run", "--config", cfg)
    assert res.code == 0, res.err
    r = open_repo(repo)
    snap = load_snapshots(r)[0]
    assert find_node(r, snap, "etc/hello.txt").size == 5
