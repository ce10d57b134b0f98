"""Reading a repository on S3 with credentials that cannot write, and with none at all: every
command that only reads works and leaves nothing behind (readers take no lock); a backup fails
with a clear error. The server (tests/s3server.py) has a read-only identity (no PUT, no DELETE)
and allows anonymous reads and listings of the test bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CAIRN
from tests.s3server import BUCKET, READER_ACCESS_KEY, READER_SECRET_KEY

Run = Callable[..., Any]


@pytest.fixture
def published(s3_url: str, tmp_path: Path, run_cli: Run, s3_server) -> tuple[str, Path]:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.txt").write_bytes(b"alpha\n" * 1000)
    (src / "big").write_bytes(os.urandom(3 << 20))
    assert run_cli("init", "--repo", s3_url).code == 0
    res = run_cli("backup", "--repo", s3_url, src)
    assert res.code == 0, res.err
    return s3_url, src


def _objects(s3_server) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    client = s3_server.client()
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        out += [(o["Key"], o["ETag"]) for o in page.get("Contents", [])]
    return sorted(out)


READER = {"AWS_ACCESS_KEY_ID": READER_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": READER_SECRET_KEY}
ANONYMOUS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}


@pytest.mark.parametrize("who", ["reader", "anonymous", "reader --no-lock"])
def test_reading_commands_work_and_change_nothing(
    who: str,
    published: tuple[str, Path],
    tmp_path: Path,
    cairn_proc: Run,
    s3_server,  # type: ignore[no-untyped-def]
) -> None:
    url, src = published
    env = ANONYMOUS if who == "anonymous" else READER
    extra = ["--s3-anonymous"] if who == "anonymous" else who.split()[1:]
    before = _objects(s3_server)

    def run(*args: Any) -> Any:
        res = cairn_proc(*args, "--repo", url, *extra, env=env)
        assert res.code == 0, (args, res.err)
        return res

    assert len(run("snapshots", "--json").json()) == 1
    assert "a.txt" in run("ls", "latest").out
    run("cat", "config")
    run("stats")
    run("cost")
    assert "a.txt" in run("find", "a.txt").out
    run("diff", "latest", "latest")
    run("check", "--read-data")
    target = tmp_path / "restored"
    run("restore", "latest", "--target", target)
    assert (target / str(src).lstrip("/") / "big").read_bytes() == (src / "big").read_bytes()
    out = tmp_path / "dump.tar"
    run("dump", "latest", f"{src}/d", "--target", out)
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert any(n.endswith("d/a.txt") for n in names)
    if os.path.exists("/dev/fuse"):
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        proc = subprocess.Popen(
            [*CAIRN, "mount", "--repo", url, *extra, os.fspath(mnt)],
            env={**os.environ, **env},
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while not os.path.ismount(mnt) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            seen = mnt / "snapshots" / "latest" / str(src).lstrip("/")
            assert (seen / "big").read_bytes() == (src / "big").read_bytes()
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert _objects(s3_server) == before  # nothing written, nothing deleted


@pytest.mark.parametrize("who", ["reader", "anonymous"])
def test_a_backup_without_write_access_fails_clearly(
    who: str,
    published: tuple[str, Path],
    cairn_proc: Run,
    s3_server,  # type: ignore[no-untyped-def]
) -> None:
    url, src = published
    env = ANONYMOUS if who == "anonymous" else READER
    extra = ["--s3-anonymous"] if who == "anonymous" else who.split()[1:]
    before = _objects(s3_server)
    res = cairn_proc("backup", "--repo", url, *extra, src, env=env)
    assert res.code == 1
    assert "access denied" in res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert _objects(s3_server) == before


def test_without_the_flag_no_credentials_is_a_clear_error(
    published: tuple[str, Path], cairn_proc: Run
) -> None:
    url, _ = published
    res = cairn_proc("snapshots", "--repo", url, env=ANONYMOUS)
    assert res.code == 1
    assert len(res.err.strip().splitlines()) == 1, res.err


def test_s3_anonymous_in_the_configuration_file(
    published: tuple[str, Path], tmp_path: Path, cairn_proc: Run
) -> None:
    url, _ = published
    config = tmp_path / "config.toml"
    config.write_text(
        f'[repositories.public]\nurl = "{url}"\npassword-env = "CAIRN_PASSWORD"\n'
        "s3-anonymous = true\n"
    )
    res = cairn_proc("snapshots", "--config", config, "--repo", "@public", "--json", env=ANONYMOUS)
    assert res.code == 0, res.err
    assert len(res.json()) == 1
