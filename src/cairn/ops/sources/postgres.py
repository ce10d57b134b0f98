"""PostgreSQL: pg_dump of each database (plain SQL, restored with psql), or one pg_dumpall.

Each pg_dump runs in a single repeatable-read transaction, so every database's dump is
consistent while it stays online. Database files are ``/NAME.sql``; pg_dumpall's is
``/pg_dumpall.sql`` (roles, tablespaces and every database). The password, if one is needed,
comes from a libpq password file (``passfile``), never from the configuration; commands get
``--no-password`` so they fail instead of waiting for a prompt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cairn.ops.sources.stream import CommandSource, StreamItem, command_lines, file_name

LIST_DATABASES = (
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
)


@dataclass(frozen=True)
class PostgresSource:
    databases: tuple[str, ...] = ()  # empty: every database that accepts connections
    dumpall: bool = False
    host: str | None = None  # a host name, or the directory of the unix socket
    port: int | None = None
    user: str | None = None
    passfile: str | None = None
    bin_dir: str | None = None  # where pg_dump, pg_dumpall and psql are (default: $PATH)
    options: tuple[str, ...] = ()  # more arguments for pg_dump or pg_dumpall

    kind = "postgres"

    def streams(self) -> list[StreamItem]:
        if self.dumpall:
            argv = [self._bin("pg_dumpall"), *self._connection(), *self.options]
            return [StreamItem("/pg_dumpall.sql", CommandSource(argv, self._env()))]
        return [
            StreamItem(
                f"/{file_name(db)}.sql",
                CommandSource(
                    [self._bin("pg_dump"), *self._connection(), *self.options, f"--dbname={db}"],
                    self._env(),
                ),
            )
            for db in self.databases or self.list_databases()
        ]

    def list_databases(self) -> list[str]:
        argv = [
            self._bin("psql"),
            *self._connection(),
            "--dbname=postgres",
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            f"--command={LIST_DATABASES}",
        ]
        return command_lines(argv, self._env(), "psql")

    def _connection(self) -> list[str]:
        args = ["--no-password"]
        if self.host:
            args.append(f"--host={self.host}")
        if self.port:
            args.append(f"--port={self.port}")
        if self.user:
            args.append(f"--username={self.user}")
        return args

    def _env(self) -> dict[str, str]:
        return {"PGPASSFILE": os.path.expanduser(self.passfile)} if self.passfile else {}

    def _bin(self, name: str) -> str:
        return os.path.join(os.path.expanduser(self.bin_dir), name) if self.bin_dir else name
