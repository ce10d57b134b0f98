"""Real database servers for the tests: PostgreSQL and MariaDB from the Debian packages.

Each server gets a fresh data directory in a temporary directory owned by the server's system
user (created by the package), listens only on a unix socket in that directory (no TCP port),
and runs as that unprivileged user (the tests run as root, which the servers refuse to be).
`make test` installs the packages (the system-deps target).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def _as_user(user: str, argv: list[str], **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def,type-arg]
    return subprocess.run(
        ["runuser", "-u", user, "--", *argv], check=True, capture_output=True, **kw
    )


def _private_dir(prefix: str, user: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    pw = pwd.getpwnam(user)
    os.chown(root, pw.pw_uid, pw.pw_gid)
    return root


def _wait_for(path: Path, proc: subprocess.Popen | None, log: Path, what: str) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while not path.exists():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


def pg_bin_dir() -> Path:
    """The newest PostgreSQL's server binaries (initdb, pg_ctl are not on $PATH on Debian)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (make system-deps installs it)")
    return found[-1].parent


class Postgres:
    """A PostgreSQL cluster: trust authentication, unix socket only, fsync off (tests only)."""

    user = "postgres"

    def __init__(self) -> None:
        self.bin = pg_bin_dir()
        self.root = _private_dir("cairn-pg-", self.user)
        self.data = self.root / "data"
        self.log = self.root / "log"
        self.socket_dir = str(self.root)
        _as_user(
            self.user,
            [str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres",
             "-E", "UTF8", "--locale=C", "--no-sync"],
        )  # fmt: skip
        _as_user(
            self.user,
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start",
             "-o", f"-k {self.root} -c listen_addresses='' -F"],
        )  # fmt: skip

    def psql(self, sql: str, db: str = "postgres") -> str:
        proc = subprocess.run(
            [str(self.bin / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir,
             "-U", "postgres", "-d", db, "-At", "-c", sql],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return proc.stdout

    def pg_dump(self, db: str) -> str:
        """The database as SQL, without the random key of pg_dump's \\restrict lines."""
        out = subprocess.run(
            [str(self.bin / "pg_dump"), "-h", self.socket_dir, "-U", "postgres", db],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        keep = [
            ln for ln in out.splitlines() if not ln.startswith(("\\restrict ", "\\unrestrict "))
        ]
        return "\n".join(keep)

    def stop(self) -> None:
        try:
            _as_user(
                self.user,
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class MariaDB:
    """A MariaDB server on a unix socket; root (this test process) connects by unix_socket."""

    user = "mysql"

    def __init__(self) -> None:
        self.root = _private_dir("cairn-mariadb-", self.user)
        self.data = self.root / "data"
        self.socket = str(self.root / "mysqld.sock")
        self.log = self.root / "error.log"
        _as_user(
            self.user,
            ["mariadb-install-db", f"--datadir={self.data}", "--user=mysql",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
        )  # fmt: skip
        self.proc = subprocess.Popen(
            ["runuser", "-u", self.user, "--", "mariadbd", "--no-defaults",
             f"--datadir={self.data}", f"--socket={self.socket}", "--skip-networking",
             f"--pid-file={self.root / 'mysqld.pid'}", f"--log-error={self.log}",
             "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
             "--innodb-flush-log-at-trx-commit=0", "--character-set-server=utf8mb4",
             "--collation-server=utf8mb4_general_ci"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for(Path(self.socket), self.proc, self.log, "MariaDB")

    def sql(self, sql: str, db: str | None = None) -> str:
        argv = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root", "-N", "-B",
                "--default-character-set=utf8mb4"]  # fmt: skip
        proc = subprocess.run(
            [*argv, *([db] if db else []), "-e", sql], capture_output=True, text=True, check=True
        )
        return proc.stdout

    def dump(self, db: str) -> bytes:
        return subprocess.run(
            ["mariadb-dump", "--no-defaults", f"--socket={self.socket}", "-u", "root",
             "--skip-dump-date", "--skip-comments", "--hex-blob", db],
            capture_output=True, check=True,
        ).stdout  # fmt: skip

    def stop(self) -> None:
        try:
            self.proc.terminate()
            self.proc.wait(60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
