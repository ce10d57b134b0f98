"""MySQL and MariaDB: mariadb-dump (or mysqldump) of each database, or of all of them at once.

Dumps run with ``--single-transaction``: InnoDB tables are read in one consistent snapshot
without locking writers out. Routines, events and triggers are included. A database's file is
``/NAME.sql`` and restores into an empty database of any name (``mariadb NAME < NAME.sql``);
``all_databases`` writes ``/all-databases.sql`` (with CREATE DATABASE statements). Without an
explicit list, every database except the server's own (information_schema, performance_schema,
sys, mysql) is dumped. A password belongs in an option file (``defaults_file``), never in the
configuration or on a command line.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from cairn.ops.sources.stream import CommandSource, SourceFailed, StreamItem, command_lines
from cairn.ops.sources.stream import file_name as component

SYSTEM_DATABASES = frozenset({"information_schema", "performance_schema", "sys", "mysql"})
CONSISTENT = ("--single-transaction", "--routines", "--events", "--triggers", "--hex-blob")
_CLIENTS = {"mariadb-dump": "mariadb", "mysqldump": "mysql"}


@dataclass(frozen=True)
class MysqlSource:
    databases: tuple[str, ...] = ()  # empty: every database but the server's own
    all_databases: bool = False
    host: str | None = None
    port: int | None = None
    socket: str | None = None
    user: str | None = None
    defaults_file: str | None = None  # an option file, e.g. with [client] password=...
    program: str | None = None  # mariadb-dump or mysqldump, or a path to one (default: found)
    options: tuple[str, ...] = ()  # more arguments for the dump program

    kind = "mysql"

    def streams(self) -> list[StreamItem]:
        dump = self._program()
        base = [dump, *self._connection(), *CONSISTENT, *self.options]
        if self.all_databases:
            argv = [*base, "--all-databases"]
            return [StreamItem("/all-databases.sql", CommandSource(argv))]
        return [
            StreamItem(f"/{component(db)}.sql", CommandSource([*base, "--", db]))
            for db in self.databases or self.list_databases(dump)
        ]

    def list_databases(self, dump: str) -> list[str]:
        directory, name = os.path.split(dump)
        client = os.path.join(directory, _CLIENTS.get(name, "mariadb"))
        argv = [client, *self._connection(), "--batch", "--skip-column-names"]
        lines = command_lines([*argv, "--execute=SHOW DATABASES"], {}, os.path.basename(client))
        return [db for db in lines if db not in SYSTEM_DATABASES]

    def _program(self) -> str:
        if self.program:
            return os.path.expanduser(self.program)
        for name in _CLIENTS:
            found = shutil.which(name)
            if found:
                return found
        raise SourceFailed("neither mariadb-dump nor mysqldump was found")

    def _connection(self) -> list[str]:
        # An option file must come first on the command line, or it is not read.
        args = []
        if self.defaults_file:
            args.append(f"--defaults-extra-file={os.path.expanduser(self.defaults_file)}")
        if self.host:
            args.append(f"--host={self.host}")
        if self.port:
            args.append(f"--port={self.port}")
        if self.socket:
            args.append(f"--socket={self.socket}")
        if self.user:
            args.append(f"--user={self.user}")
        return args
