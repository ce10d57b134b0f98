"""cairn run and cairn schedule: hooks, healthchecks, one run per job, retention, exit codes,
systemd units and crontab lines (written to a temporary XDG_CONFIG_HOME, never enabled)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.app.healthcheck import ping, ping_url, redact
from cairn.app.joblock import JobBusy, JobLock
from cairn.app.schedule import merge_crontab
from cairn.config.load import load_config
from cairn.ops.snapshots import load_snapshots
from tests.craft import PASSWORD, create_repo, open_repo

SECRET = "s3cr3t-Passw0rd-that-must-never-show"


@pytest.fixture(autouse=True)
def _xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return create_repo(tmp_path / "repo")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    (d / "a.txt").write_text("a\n")
    return d


class Monitor:
    """A healthchecks-like HTTP server on 127.0.0.1 that records every ping."""

    def __init__(self) -> None:
        self.pings: list[tuple[str, str]] = []
        monitor = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                monitor.pings.append((self.path, self.rfile.read(n).decode()))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/uuid-1234"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [p for p, _ in self.pings]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    m = Monitor()
    try:
        yield m
    finally:
        m.close()


def config(
    tmp_path: Path, repo: Path, jobs: str, password: str = 'password-env = "CAIRN_PASSWORD"'
) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[repositories.main]\nurl = "{repo}"\n{password}\n\n{jobs}')
    return cfg


def snaps(repo: Path) -> list:  # type: ignore[type-arg]
    return load_snapshots(open_repo(repo, load_index=False))


# ---------------------------------------------------------------------- run
def test_run_backs_up_then_applies_retention_and_prunes(
    tmp_path: Path, repo: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.home]\nrepository = "main"\npaths = ["{src}"]\ntags = ["home"]\n'
        "[jobs.home.retention]\nkeep-last = 2\n",
    )
    ids = []
    for i in range(4):
        (src / f"f{i}").write_bytes(os.urandom(200_000))  # each run leaves data only it uses
        res = run_cli("run", "--config", cfg, "--json")
        assert res.code == 0, res.err
        job = res.json()["jobs"][0]
        ids.append(job["snapshot"]["id"])
        assert job["kept"] == min(i + 1, 2)
        assert job["forgotten"] == (1 if i >= 2 else 0)
        assert (job["prune"] is not None) == (i >= 2)
    assert job["prune"]["packs_deleted"] + job["prune"]["packs_repacked"] >= 1
    left = snaps(repo)
    assert [s.id for s in left] == ids[-2:]
    assert all(sorted(s.tags) == ["home", "job:home"] for s in left)
    human = run_cli("run", "--config", cfg)
    assert human.code == 0
    assert "job home: ok, snapshot" in human.out and "kept 2, forgot 1 snapshot" in human.out
    assert human.out.strip().endswith("1 job: 1 ok, 0 partial, 0 failed")


def test_retention_only_touches_the_jobs_own_snapshots(
    tmp_path: Path, repo: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("backup", "-r", repo, src).code == 0  # a manual backup of the same path
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.j]\nrepository = "main"\npaths = ["{src}"]\n[jobs.j.retention]\nkeep-last = 1\n',
    )
    for _ in range(2):
        assert run_cli("run", "--config", cfg).code == 0
    tags = sorted(tuple(s.tags) for s in snaps(repo))
    assert tags == [(), ("job:j",)]


def test_hooks_run_in_order_with_status_and_snapshot(
    tmp_path: Path, repo: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "hooks.log"
    cfg = config(
        tmp_path,
        repo,
        f"""[jobs.h]
repository = "main"
paths = ["{src}"]
[jobs.h.hooks]
before = ["echo before1 $CAIRN_JOB >> {log}", "echo before2 >> {log}; echo noise"]
after = ["echo after $CAIRN_JOB_STATUS $CAIRN_SNAPSHOT >> {log}"]
""",
    )
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 0, res.err
    snap_id = res.json()["jobs"][0]["snapshot"]["id"]
    assert log.read_text().splitlines() == ["before1 h", "before2", f"after ok {snap_id}"]
    assert "noise" in res.err  # hook output goes to stderr; stdout stays one JSON document


def test_failing_before_hook_skips_the_backup_but_runs_after(
    tmp_path: Path, repo: Path, src: Path, run_cli, monitor: Monitor
) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "hooks.log"
    cfg = config(
        tmp_path,
        repo,
        f"""[jobs.h]
repository = "main"
paths = ["{src}"]
healthcheck = "{monitor.url}"
[jobs.h.hooks]
before = ["exit 7", "echo never >> {log}"]
after = ["echo after $CAIRN_JOB_STATUS >> {log}"]
""",
    )
    res = run_cli("run", "--config", cfg)
    assert res.code == 1
    assert "cairn: error: job h failed: before hook 1 exited with status 7" in res.err
    assert log.read_text() == "after failed\n"
    assert snaps(repo) == []
    assert monitor.paths() == ["/ping/uuid-1234/start", "/ping/uuid-1234/fail"]
    assert "error: before hook 1 exited with status 7" in monitor.pings[1][1]


def test_failing_after_hook_fails_the_job_but_keeps_the_snapshot(
    tmp_path: Path, repo: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.h]\nrepository = "main"\npaths = ["{src}"]\nhooks = {{ after = ["false"] }}\n',
    )
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 1
    job = res.json()["jobs"][0]
    assert (job["status"], job["error"]) == ("failed", "after hook 1 exited with status 1")
    assert len(snaps(repo)) == 1


def test_healthcheck_pings_start_and_success_with_a_report(
    tmp_path: Path, repo: Path, src: Path, run_cli, monitor: Monitor
) -> None:  # type: ignore[no-untyped-def]
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.h]\nrepository = "main"\npaths = ["{src}"]\nhealthcheck = "{monitor.url}"\n',
    )
    res = run_cli("run", "--config", cfg)
    assert res.code == 0, res.err
    assert monitor.paths() == ["/ping/uuid-1234/start", "/ping/uuid-1234"]
    assert monitor.pings[1][1].startswith("cairn job h: ok\nsnapshot ")


def test_unreachable_healthcheck_is_a_warning_not_a_failure(
    tmp_path: Path, repo: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    dead = Monitor()
    url = dead.url
    dead.close()  # nothing listens there any more
    cfg = config(
        tmp_path, repo, f'[jobs.h]\nrepository = "main"\npaths = ["{src}"]\nhealthcheck = "{url}"\n'
    )
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 0
    warnings = res.json()["jobs"][0]["warnings"]
    assert warnings and all("healthcheck" in w and "Connection refused" in w for w in warnings)
    assert "uuid-1234" not in res.out + res.err  # the check's secret part is never shown
    assert len(snaps(repo)) == 1


def test_a_running_job_is_not_started_twice(
    tmp_path: Path, repo: Path, src: Path, run_cli, monitor: Monitor
) -> None:  # type: ignore[no-untyped-def]
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.busy]\nrepository = "main"\npaths = ["{src}"]\nhealthcheck = "{monitor.url}"\n'
        f'[jobs.free]\nrepository = "main"\npaths = ["{src}"]\n',
    )
    with JobLock("busy"):
        res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 1
    busy, free = res.json()["jobs"]
    assert busy["status"] == "failed"
    assert busy["error"] == f"job busy is already running (pid {os.getpid()})"
    assert free["status"] == "ok"
    assert monitor.pings == []  # the running instance reports for itself
    assert [s.tags for s in snaps(repo)] == [["job:free"]]
    assert run_cli("run", "--config", cfg, "busy").code == 0  # the lock went with its holder


def test_job_lock_excludes_other_processes(tmp_path: Path) -> None:
    code = "from cairn.app.joblock import JobLock\nimport time\nwith JobLock('x'):\n    print('locked', flush=True)\n    time.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        with pytest.raises(JobBusy, match=f"pid {proc.pid}"), JobLock("x"):
            pass
    finally:
        proc.kill()
        proc.wait()
    with JobLock("x"):  # the kernel released it when the holder died
        pass


def test_exit_codes_and_partial_jobs(
    tmp_path: Path, repo: Path, src: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from cairn.ops.backup import file_saver

    (src / "locked.txt").write_text("cannot be read\n")
    real_open = file_saver.open_for_reading

    def refusing_open(path: bytes, extra_flags: int = 0, dir_fd: int | None = None) -> int:
        if path.endswith(b"locked.txt"):  # root reads anything
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, extra_flags, dir_fd)

    monkeypatch.setattr(file_saver, "open_for_reading", refusing_open)
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.ok]\nrepository = "main"\npaths = ["{src / "a.txt"}"]\n'
        f'[jobs.partial]\nrepository = "main"\npaths = ["{src}"]\n'
        f'[jobs.missing]\nrepository = "main"\npaths = ["{src}", "{tmp_path / "vanished"}"]\n'
        f'[jobs.bad]\nrepository = "main"\nsource = {{ kind = "command", command = ["false"], filename = "x" }}\n',
    )
    res = run_cli("run", "--config", cfg, "ok", "partial", "--json")
    assert res.code == 3, res.err
    doc = res.json()
    assert [(j["job"], j["status"]) for j in doc["jobs"]] == [("ok", "ok"), ("partial", "partial")]
    assert doc["jobs"][1]["error"] == "1 entry could not be read"
    assert doc["jobs"][1]["snapshot"]["id"]  # the snapshot holds everything else
    # a path that does not exist fails the job: no snapshot, an error naming the path
    before = len(snaps(repo))
    res = run_cli("run", "--config", cfg, "missing")
    assert res.code == 1
    assert f"job missing failed: {tmp_path / 'vanished'}: no such file" in res.err
    assert len(snaps(repo)) == before
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 1
    assert (res.json()["ok"], res.json()["partial"], res.json()["failed"]) == (1, 1, 2)
    missing = next(j for j in res.json()["jobs"] if j["job"] == "missing")
    assert missing["status"] == "failed" and missing["snapshot"] is None
    unknown = run_cli("run", "--config", cfg, "nope")
    assert unknown.code == 2 and "no job 'nope'" in unknown.err


def test_secrets_never_reach_output_or_monitor(
    tmp_path: Path, repo: Path, src: Path, cairn_proc, monitor: Monitor
) -> None:  # type: ignore[no-untyped-def]
    """A password from a command, a file or the environment is never printed, not in errors
    either, and the monitor's reports do not carry it."""
    (tmp_path / "pw").write_text(PASSWORD.decode() + "\n")
    cases = [
        (f"password-command = \"printf '{PASSWORD.decode()}'\"", {}, 0),
        ('password-file = "pw"', {}, 0),
        ('password-env = "MY_PW"', {"MY_PW": PASSWORD.decode()}, 0),
        ('password-env = "MY_PW"', {"MY_PW": SECRET}, 1),  # a wrong password: the job fails
    ]
    for password, env, code in cases:
        job = f'[jobs.s]\nrepository = "main"\npaths = ["{src}"]\nhealthcheck = "{monitor.url}"\n'
        cfg = config(tmp_path, repo, job, password=password)
        res = cairn_proc("run", "--config", cfg, env={"CAIRN_PASSWORD": "", **env})
        assert res.code == code, res.err
        for secret in (PASSWORD.decode(), SECRET):
            assert secret not in res.out + res.err
            assert all(secret not in body for _, body in monitor.pings)
    assert "wrong password" in res.err
    assert monitor.paths()[-1] == "/ping/uuid-1234/fail"


# ---------------------------------------------------------------------- schedule
def test_schedule_install_dry_run_writes_nothing(
    tmp_path: Path, repo: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.hourly]\nrepository = "main"\npaths = ["{src}"]\nschedule = "@hourly"\n',
    )
    res = run_cli("schedule", "install", "--config", cfg, "--dry-run")
    assert res.code == 0, res.err
    unit_dir = tmp_path / "xdg" / "systemd" / "user"
    assert f"would write {unit_dir / 'cairn-hourly.timer'}:" in res.out
    assert "    OnCalendar=*-*-* *:00:00" in res.out
    assert "would run: systemctl --user enable --now cairn-hourly.timer" in res.out
    assert not unit_dir.exists()
    res = run_cli("schedule", "install", "--config", cfg, "--cron", "--dry-run", "--json")
    line = res.json()["lines"][0]
    assert line.startswith("0 * * * * ") and line.endswith(f"--config {cfg} --quiet hourly")


def test_schedule_install_writes_units_and_removes_stale_ones(
    tmp_path: Path, repo: Path, src: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.hourly]\nrepository = "main"\npaths = ["{src}"]\nschedule = "@hourly"\n'
        f'[jobs.twice]\nrepository = "main"\npaths = ["{src}"]\nschedule = "0 3 1,15 * sun"\n'
        f'[jobs.manual]\nrepository = "main"\npaths = ["{src}"]\n',
    )
    unit_dir = tmp_path / "xdg" / "systemd" / "user"
    unit_dir.mkdir(parents=True)
    (unit_dir / "cairn-other.timer").write_text("[Timer]\n")  # not ours: left alone
    res = run_cli("schedule", "install", "--config", cfg, "--no-enable", "--json")
    assert res.code == 0, res.err
    doc = res.json()
    assert sorted(doc["units"]) == [
        "cairn-hourly.service",
        "cairn-hourly.timer",
        "cairn-twice.service",
        "cairn-twice.timer",
    ]
    assert doc["commands"] == []
    timer = (unit_dir / "cairn-twice.timer").read_text()
    assert (
        "OnCalendar=Sun *-*-* 03:00:00\nOnCalendar=*-*-01,15 03:00:00\nPersistent=true\n" in timer
    )
    service = (unit_dir / "cairn-twice.service").read_text()
    exec_line = next(ln for ln in service.splitlines() if ln.startswith("ExecStart="))
    assert exec_line == f"ExecStart={sys.executable} -m cairn run --config {cfg} twice"
    verify = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_dir / "cairn-twice.timer")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "cairn-twice" not in verify.stderr.replace(str(unit_dir), ""), verify.stderr

    cfg.write_text(cfg.read_text().replace('schedule = "@hourly"\n', ""))
    res = run_cli("schedule", "install", "--config", cfg, "--no-enable")
    assert res.code == 0
    assert f"removed {unit_dir / 'cairn-hourly.timer'}" in res.out
    assert sorted(p.name for p in unit_dir.iterdir()) == [
        "cairn-other.timer",
        "cairn-twice.service",
        "cairn-twice.timer",
    ]


def test_crontab_block_is_replaced_and_the_rest_kept(tmp_path: Path, repo: Path, src: Path) -> None:
    cfg_path = config(
        tmp_path,
        repo,
        f'[jobs.n]\nrepository = "main"\npaths = ["{src}"]\nschedule = "5 4 * * *"\n',
    )
    config_obj = load_config(str(cfg_path))
    mine = "MAILTO=me\n17 * * * * run-parts /etc/cron.hourly\n"
    first = merge_crontab(mine, config_obj)
    assert first.startswith(mine)
    assert f"# BEGIN cairn jobs from {cfg_path}\n5 4 * * * " in first
    assert merge_crontab(first, config_obj) == first
    cfg_path.write_text(cfg_path.read_text().replace('"5 4 * * *"', '"*/10 * * * *"'))
    second = merge_crontab(first, load_config(str(cfg_path)))
    assert (
        second.count("BEGIN cairn") == 1 and "*/10 * * * * " in second and "5 4 * * *" not in second
    )
    cfg_path.write_text(cfg_path.read_text().replace('schedule = "*/10 * * * *"\n', ""))
    assert merge_crontab(second, load_config(str(cfg_path))) == mine


def test_schedule_list_shows_next_runs(tmp_path: Path, repo: Path, src: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    cfg = config(
        tmp_path,
        repo,
        f'[jobs.hourly]\nrepository = "main"\npaths = ["{src}"]\nschedule = "@hourly"\n'
        f'[jobs.manual]\nrepository = "main"\npaths = ["{src}"]\n',
    )
    res = run_cli("schedule", "list", "--config", cfg, "--json", "--count", "3")
    assert res.code == 0, res.err
    hourly, manual = res.json()
    assert hourly["schedule"] == "@hourly" and len(hourly["next"]) == 3
    assert all(t.endswith(":00:00" + t[-6:]) for t in hourly["next"])
    assert manual == {"job": "manual", "schedule": None, "next": [], "on_calendar": []}
    human = run_cli("schedule", "list", "--config", cfg)
    assert "hourly" in human.out and "not scheduled" in human.out


# ---------------------------------------------------------------------- healthcheck helpers
def test_ping_urls_follow_the_healthchecks_convention() -> None:
    assert ping_url("https://hc-ping.com/abc", "start") == "https://hc-ping.com/abc/start"
    assert ping_url("https://hc-ping.com/abc/", "fail") == "https://hc-ping.com/abc/fail"
    assert ping_url("https://hc-ping.com/abc?rid=1", "fail") == "https://hc-ping.com/abc/fail?rid=1"
    assert ping_url("https://hc-ping.com/abc", "success") == "https://hc-ping.com/abc"
    assert redact("https://hc-ping.com/abc?x=y") == "https://hc-ping.com/..."


def test_a_refusing_monitor_is_not_asked_again(tmp_path: Path) -> None:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x"
        assert (
            ping(url, "start", backoff=0)
            == "healthcheck start ping to http://127.0.0.1/... failed: HTTP 404"
        )
        assert hits == ["/x/start"]
    finally:
        server.shutdown()
        server.server_close()


def test_json_summary_shape(tmp_path: Path, repo: Path, src: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, repo, f'[jobs.a]\nrepository = "main"\npaths = ["{src}"]\n')
    doc = json.loads(run_cli("run", "--config", cfg, "--json").out)
    assert set(doc) == {"jobs", "ok", "partial", "failed"}
    assert set(doc["jobs"][0]) == {
        "job",
        "status",
        "error",
        "snapshot",
        "forgotten",
        "kept",
        "prune",
        "mirror",
        "copy",
        "warnings",
        "duration",
    }
