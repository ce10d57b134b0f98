"""cairn mirror as a user runs it: init, push, status with its cost, verify, and a mirror job
run by `cairn run`; bad input gets one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CAIRN, NOBODY

pytestmark = pytest.mark.usefixtures("_xdg")


@pytest.fixture
def _xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _src(root: Path) -> Path:
    (root / "album").mkdir(parents=True)
    (root / "album" / "one.jpg").write_bytes(os.urandom(70_000))
    (root / "album" / "two.png").write_bytes(os.urandom(30_000))
    (root / "notes.txt").write_text("hello\n")
    return root


def test_push_status_verify_on_s3_with_plain_boto3_reads(s3_url, s3_env, tmp_path, run_cli):  # type: ignore[no-untyped-def]
    src = _src(tmp_path / "src")
    assert run_cli("mirror", "init", s3_url).code == 0
    again = run_cli("mirror", "init", s3_url)
    assert again.code == 1 and "is a mirror already" in again.err
    status = run_cli("mirror", "status", src, s3_url, "--json")
    assert status.code == 0, status.err
    plan = status.json()
    assert sorted(plan["would_upload"]) == ["album/one.jpg", "album/two.png", "notes.txt"]
    assert plan["estimate"]["requests"]["put"] == 3 + 3 and plan["estimate"]["cost"] > 0
    human = run_cli("mirror", "status", src, s3_url)
    assert "would upload 3 files" in human.out and "$" in human.out
    res = run_cli("mirror", "push", src, s3_url, "--json")
    assert res.code == 0, res.err
    doc = res.json()
    assert doc["uploaded"] == 3 and doc["generation"] == 1 and doc["store"]["put"] >= 3
    bucket, _, prefix = s3_url.split("/", 3)[-1].partition("/")
    s3 = s3_env.client()
    got = s3.get_object(Bucket=bucket, Key=f"{prefix}/album/one.jpg")
    assert got["Body"].read() == (src / "album" / "one.jpg").read_bytes()
    assert got["ContentType"] == "image/jpeg"
    verify = run_cli("mirror", "verify", s3_url, "--read-data")
    assert verify.code == 0 and "3 objects" in verify.out and "0 problems" in verify.out
    s3.put_object(Bucket=bucket, Key=f"{prefix}/notes.txt", Body=b"tampered")
    bad = run_cli("mirror", "verify", s3_url)
    assert bad.code == 1 and "notes.txt" in bad.err


def test_unreadable_files_exit_3_and_the_rest_is_pushed(unprivileged_base):  # type: ignore[no-untyped-def]
    src = _src(unprivileged_base / "src")
    (src / "secret").write_text("x")
    os.chmod(src / "secret", 0)
    dest = unprivileged_base / "mirror"
    env = {**os.environ, "HOME": str(unprivileged_base), "CAIRN_CACHE_DIR": f"{dest}-cache"}
    as_user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if os.geteuid() != 0:
        as_user = []

    def cairn(*args: object) -> subprocess.CompletedProcess[str]:
        cmd = [*as_user, *CAIRN, *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/", check=False)

    assert cairn("mirror", "init", dest).returncode == 0
    res = cairn("mirror", "push", src, dest)
    assert res.returncode == 3, res.stderr
    assert "secret: Permission denied" in res.stderr
    assert (dest / "notes.txt").read_text() == "hello\n"
    assert (dest / "album" / "one.jpg").exists() and not (dest / "secret").exists()


def test_a_directory_that_is_not_a_mirror_is_refused(tmp_path, run_cli):  # type: ignore[no-untyped-def]
    src = _src(tmp_path / "src")
    plain = tmp_path / "plain"
    plain.mkdir()
    res = run_cli("mirror", "push", src, plain)
    assert res.code == 1 and "is not a mirror" in res.err and len(res.err.splitlines()) == 1
    assert list(plain.iterdir()) == []
    missing = run_cli("mirror", "push", tmp_path / "nope", plain)
    assert missing.code != 0 and "not a directory" in missing.err


def test_a_mirror_job_runs_with_cairn_run(tmp_path, run_cli):  # type: ignore[no-untyped-def]
    src = _src(tmp_path / "src")
    dest = tmp_path / "mirror"
    assert run_cli("mirror", "init", dest).code == 0
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[jobs.photos]\nmirror = "{dest}"\npaths = ["{src}"]\ndelete = true\n'
        f'[jobs.photos.hooks]\nafter = ["echo $CAIRN_JOB_STATUS > {tmp_path}/status"]\n'
    )
    res = run_cli("run", "--config", cfg, "--json")
    assert res.code == 0, res.err
    job = res.json()["jobs"][0]
    assert job["status"] == "ok" and job["mirror"]["uploaded"] == 3
    assert (dest / "album" / "two.png").read_bytes() == (src / "album" / "two.png").read_bytes()
    (src / "notes.txt").unlink()
    human = run_cli("run", "--config", cfg)
    assert human.code == 0 and "mirror generation 2" in human.out and "removed 1" in human.out
    assert not (dest / "notes.txt").exists()
    assert (tmp_path / "status").read_text() == "ok\n"


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ('mirror = "/m"\npaths = ["/a", "/b"]', "mirrors one directory"),
        ('mirror = "/m"\nrepository = "x"\npaths = ["/a"]', "not both"),
        ('repository = "x"\npaths = ["/a"]\ndelete = true', "mirror jobs only"),
        ('mirror = "relative"\npaths = ["/a"]', "must be absolute"),
        ('mirror = "@nope"\npaths = ["/a"]', "no repository 'nope'"),
    ],
)
def test_mirror_job_config_errors(tmp_path, run_cli, job, message):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[repositories.x]\nurl = "/r"\n\n[jobs.j]\n{job}\n')
    res = run_cli("run", "--config", cfg)
    assert res.code == 1 and message in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1
