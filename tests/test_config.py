"""The configuration file: what it declares, and errors that name the file, line and key."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cairn.config.document import Document, locate_keys
from cairn.config.load import default_path, load_config
from cairn.config.schedule import Schedule, ScheduleError
from cairn.config.schema import read_config
from cairn.core.errors import ConfigError
from cairn.ops.retention import UNLIMITED, Duration
from cairn.ops.sources.mysql import MysqlSource
from cairn.ops.sources.postgres import PostgresSource
from cairn.ops.sources.sqlite import SqliteSource

ROOT = Path(__file__).resolve().parent.parent
BASE = """\
[repositories.main]
url = "/srv/backup/repo"
password-file = "pw"

"""


def parse(text: str, file: str = "/etc/cairn/config.toml"):  # type: ignore[no-untyped-def]
    return read_config(Document.parse(file, text))


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse(text)
    return str(e.value)


# ---------------------------------------------------------------------- what it declares
def test_readme_example_config_is_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks, "the README shows a configuration"
    config = parse(blocks[0], str(Path.home() / ".config/cairn/config.toml"))
    home, db = config.jobs["home"], config.jobs["postgres"]
    assert home.paths == tuple(str(Path.home() / p) for p in ("Documents", "Photos", "src"))
    assert home.retention is not None and home.retention.policy.yearly == UNLIMITED
    assert home.schedule is not None and home.schedule.on_calendar() == ["*-*-* *:00:00"]
    assert isinstance(db.source, PostgresSource) and db.source.host == "/var/run/postgresql"
    assert db.retention is not None and db.retention.policy.within == Duration(days=2)
    assert db.schedule is not None and db.schedule.cron == "30 2 * * *"
    assert db.hooks.before and db.hooks.after
    repo = config.repositories["main"]
    assert repo.password_file == str(Path.home() / ".config/cairn/password")
    assert (repo.s3_path_style, repo.storage_class, repo.limit_upload, repo.memory_limit) == (
        True,
        "STANDARD_IA",
        5000,
        256 << 20,
    )


def test_every_source_kind_and_relative_files(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        BASE
        + """
[jobs.pg]
repository = "main"
source = { kind = "postgres", databases = ["a", "b"], port = 5433, passfile = "pgpass" }

[jobs.my]
repository = "main"
[jobs.my.source]
kind = "mysql"
all-databases = true
defaults-file = "/etc/mysql/backup.cnf"

[jobs.lite]
repository = "main"
source = { kind = "sqlite", path = "data/app.db", filename = "db/app.sql" }

[jobs.svn]
repository = "main"
source = { kind = "svn", parent = "/srv/svn", options = ["--deltas"] }

[jobs.cmd]
repository = "main"
source = { kind = "command", command = ["ldapsearch", "-LLL"], filename = "ldap.ldif" }
"""
    )
    config = load_config(str(cfg))
    assert config.repositories["main"].password_file == str(tmp_path / "pw")
    pg = config.jobs["pg"].source
    assert isinstance(pg, PostgresSource) and pg.passfile == str(tmp_path / "pgpass")
    assert pg.databases == ("a", "b") and pg.port == 5433
    my = config.jobs["my"].source
    assert isinstance(my, MysqlSource) and my.all_databases
    lite = config.jobs["lite"].source
    assert isinstance(lite, SqliteSource)
    assert (lite.path, lite.filename) == (str(tmp_path / "data/app.db"), "/db/app.sql")
    assert [i.path for i in config.jobs["cmd"].streams()] == ["/ldap.ldif"]
    assert config.jobs["svn"].tag == "job:svn"


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_path() == str(tmp_path / "cairn" / "config.toml")
    with pytest.raises(ConfigError, match="no such file"):
        load_config()


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # unknown key, with a suggestion
            BASE
            + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\n[jobs.a.retention]\nkeep-daly = 3\n',
            ":9: jobs.a.retention.keep-daly: unknown key (did you mean 'keep-daily'?)",
        ),
        (  # wrong type
            BASE + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\ntags = "daily"\n',
            ":8: jobs.a.tags: expected an array of strings, got a string",
        ),
        (  # wrong type inside an array
            BASE + '[jobs.a]\nrepository = "main"\npaths = [\n  "/x",\n  3,\n]\n',
            ":7: jobs.a.paths[1]: expected a string, got an integer",
        ),
        (  # missing field: reported at the table
            BASE + '[jobs.a]\npaths = ["/x"]\n',
            ":5: jobs.a: missing key 'repository'",
        ),
        (  # a key inside an inline table: the line of the inline table
            BASE + '[jobs.a]\nrepository = "main"\nsource = { kind = "postgres", port = "5432" }\n',
            ":7: jobs.a.source.port: expected an integer, got a string",
        ),
        (
            BASE + '[jobs.a]\nrepository = "nope"\npaths = ["/x"]\n',
            ":6: jobs.a.repository: no repository 'nope'",
        ),
        (
            BASE + '[jobs.a]\nrepository = "main"\n',
            ":5: jobs.a: a job backs up either paths or a [source]",
        ),
        (
            BASE + '[jobs.a]\nrepository = "main"\nsource = { kind = "oracle" }\n',
            ":7: jobs.a.source.kind: unknown source kind 'oracle'",
        ),
        (
            BASE + '[jobs.a]\nrepository = "main"\npaths = ["relative"]\n',
            ":7: jobs.a.paths[0]: must be an absolute path",
        ),
        (
            BASE + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\nschedule = "61 * * * *"\n',
            ":8: jobs.a.schedule: '61 * * * *' is not a valid cron expression",
        ),
        (
            BASE + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\nschedule = "0 0 L * *"\n',
            "jobs.a.schedule: '0 0 L * *': 'l' is not a standard cron field",
        ),
        (
            BASE
            + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\n[jobs.a.retention]\nprune = true\n',
            ":8: jobs.a.retention: a retention policy needs at least one keep-* rule",
        ),
        (
            BASE
            + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\n[jobs.a.retention]\nkeep-within = "3 weeks"\n',
            ":9: jobs.a.retention.keep-within: invalid duration",
        ),
        (
            BASE
            + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\n[jobs.a.retention]\nkeep-within-daily = "1w"\n',
            ":9: jobs.a.retention.keep-within-daily: invalid duration",
        ),
        (
            BASE + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\nhealthcheck = "hc-ping.com/x"\n',
            ":8: jobs.a.healthcheck: must be an http:// or https:// URL",
        ),
        (
            '[repositories.main]\nurl = "/r"\npassword = "hunter2"\n',
            ":3: repositories.main.password: a password does not belong in this file",
        ),
        (
            '[repositories.main]\nurl = "/r"\npassword-file = "a"\npassword-env = "B"\n',
            ":4: repositories.main.password-env: give only one of",
        ),
        (
            '[repositories."my repo"]\nurl = "/r"\n',
            ':1: repositories."my repo": a repository name may hold',
        ),
        (
            "[repositories.main]\nurl = \n",
            ":2: invalid TOML: Invalid value",
        ),
        (
            BASE + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\n[[jobs.a.hooks]]\nbefore = []\n',
            ":8: jobs.a.hooks: expected a table, got an array",
        ),
        (
            "unknown = 1\n",
            ":1: unknown: unknown key",
        ),
        (
            '[repositories.main]\nurl = "/r"\nmemory-limit = "a lot"\n',
            ":3: repositories.main.memory-limit: must be a size such as 256M or 1G",
        ),
        (
            '[repositories.main]\nurl = "/r"\nmemory-limit = "16M"\n',
            ":3: repositories.main.memory-limit: must be at least 48M",
        ),
    ],
)
def test_errors_name_file_line_and_key(text: str, expected: str) -> None:
    message = error_of(text)
    assert message.startswith("/etc/cairn/config.toml:"), message
    assert expected in message, message
    assert "\n" not in message


def test_secrets_are_never_part_of_an_error() -> None:
    message = error_of('[repositories.main]\nurl = "/r"\npassword = "hunter2"\n')
    assert "hunter2" not in message


def test_cli_reports_a_bad_config_in_one_line(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text(BASE + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\ncolor = "red"\n')
    for args in (["run"], ["schedule", "list"], ["schedule", "install", "--dry-run"]):
        res = run_cli(*args, "--config", cfg)
        assert res.code == 1
        assert res.err == f"cairn: error: {cfg}:8: jobs.a.color: unknown key\n"


# ---------------------------------------------------------------------- key positions
def test_locate_keys_follows_tables_arrays_strings_and_comments() -> None:
    text = '''\
# a comment = not a key
top = 1
"quoted key" = 2
dotted.key.here = 3
multi = """
not = a key
"""
array = [
  "x = y",  # still the array
  { inline = 1 },
]
[a]
b = 'x # not a comment'
[[list]]
name = "first"
[[list]]
name = "second"
[list.sub]
deep = true
[ c . "d e" ]
f = 4
'''
    lines = locate_keys(text)
    assert lines[("top",)] == 2
    assert lines[("quoted key",)] == 3
    assert lines[("dotted", "key", "here")] == 4
    assert lines[("multi",)] == 5
    assert ("not",) not in lines
    assert lines[("array",)] == 8
    assert ("inline",) not in lines
    assert lines[("a", "b")] == 13
    assert lines[("list", 0, "name")] == 15
    assert lines[("list", 1, "name")] == 17
    assert lines[("list", 1, "sub", "deep")] == 19
    assert lines[("c", "d e", "f")] == 21


# ---------------------------------------------------------------------- schedules
@pytest.mark.parametrize(
    "expr",
    [
        "30 2 * * *",
        "*/15 8-18 * * mon-fri",
        "0 0 1,15 * 0",  # cron: the 1st, the 15th, and every Sunday
        "5 4 * jan,jul 7",
        "0 */6 1-10 * *",
        "@weekly",
        "@monthly",
        "59 23 31 12 *",
    ],
)
def test_systemd_calendar_fires_exactly_when_cron_does(expr: str) -> None:
    """Every OnCalendar= expression, as systemd computes it, against croniter's run times."""
    schedule = Schedule.parse(expr)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    want = schedule.next_runs(start, 40)
    got: set[datetime] = set()
    for cal in schedule.on_calendar():
        got |= set(systemd_next(cal, start, 40))
    assert sorted(got)[:40] == want, schedule.on_calendar()


def systemd_next(calendar: str, start: datetime, n: int) -> list[datetime]:
    proc = subprocess.run(
        ["systemd-analyze", "calendar", f"--base-time=@{int(start.timestamp())}",
         f"--iterations={n}", calendar],
        capture_output=True, text=True, check=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    times = re.findall(
        r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", proc.stdout
    )
    return [datetime.strptime(t, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) for t in times]


def test_schedule_next_runs_are_local_and_strictly_after() -> None:
    s = Schedule.parse("@hourly")
    now = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    runs = s.next_runs(now, 3)
    assert [r - now for r in runs] == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=3)]


@pytest.mark.parametrize(
    "bad", ["* * * *", "0 0 * * * 2025", "0 0 ? * *", "0 0 * * 5#2", "H 0 * * *"]
)
def test_nonstandard_cron_is_refused(bad: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(bad)


def test_keep_within_periods_in_a_retention() -> None:
    text = BASE + '[jobs.a]\nrepository = "main"\npaths = ["/x"]\n[jobs.a.retention]\n'
    text += 'keep-within-daily = "7d"\nkeep-within-monthly = "1y"\n'
    retention = parse(text).jobs["a"].retention
    assert retention is not None
    assert retention.policy.within_periods == (
        ("daily", Duration(days=7)),
        ("monthly", Duration(years=1)),
    )
