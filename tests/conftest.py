"""Shared fixtures: a fresh repository, the CLI run in-process or as a user would, tree compare."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.cli.main import main as cli_main
from cairn.crypto.kdf import KdfParams

PASSWORD = "correct horse battery staple"
# Cheap KDF parameters for repositories created by tests through the Python API.
FAST_KDF = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
CAIRN = [sys.executable, "-m", "cairn"]
# Address space of ``run_limited`` processes: a hostile repository must not make cairn need more
MEMORY_LIMIT = 1536 << 20


def interruptible() -> None:
    """``preexec_fn`` for a child that the test interrupts with SIGINT: a shell that starts
    the test run in the background makes it ignore SIGINT, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):  # type: ignore[no-untyped-def]
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_PASSWORD", PASSWORD)
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CAIRN_REPOSITORY", raising=False)
    # job locks and the history of runs: the test's own, never the user's
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("CAIRN_STATE_DIR", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)


@pytest.fixture
def run_cli(capfd: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Runs ``cairn ARGS`` in this process (fast); returns exit code and captured output."""

    def run(*args: str | os.PathLike[str]) -> Result:
        capfd.readouterr()
        code = cli_main([os.fspath(a) for a in args])
        out, err = capfd.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def cairn_proc() -> Callable[..., Result]:
    """Runs ``cairn ARGS`` as a separate process, exactly as a user would."""

    def run(
        *args: str | os.PathLike[str], input: bytes | None = None, env: dict[str, str] | None = None
    ) -> Result:
        proc = subprocess.run(
            [*CAIRN, *[os.fspath(a) for a in args]],
            input=input,
            capture_output=True,
            env={**os.environ, **(env or {})},
            check=False,
        )
        return Result(
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )

    return run


def run_limited(*args: str | os.PathLike[str], timeout: float = 600) -> Result:
    """``cairn ARGS`` as a separate process that cannot map more than ``MEMORY_LIMIT`` bytes."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    proc = subprocess.run(
        [*CAIRN, *[os.fspath(a) for a in args]],
        capture_output=True,
        preexec_fn=limit,
        check=False,
        timeout=timeout,
    )
    return Result(
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


@pytest.fixture
def repo_path(tmp_path: Path, run_cli: Callable[..., Result]) -> Path:
    """An initialised local repository with small packs (so tests produce several)."""
    path = tmp_path / "repo"
    res = run_cli("init", "--repo", path, "--pack-size", "1M")
    assert res.code == 0, res.err
    return path


@pytest.fixture(params=["local", "s3"])
def repo_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh repository location: a local directory, then one on the S3 test server."""
    if request.param == "local":
        return str(tmp_path / "repo")
    return request.getfixturevalue("s3_url")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def s3_server():  # type: ignore[no-untyped-def]
    """One real SeaweedFS S3 server for the whole session."""
    from tests import s3server

    server = s3server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """SeaweedFS as a cluster of its own for one test (tests/s3cluster.py): master, three volume
    servers (replication 001), filer and S3 gateway, each a process the test may kill and
    restart."""
    from tests import s3cluster

    cluster = s3cluster.start(tmp_path_factory.mktemp("swc"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Credentials for the test server in the environment (as the AWS chain reads them)."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def s3_url(s3_env, request: pytest.FixtureRequest) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty repository location in the test bucket."""
    prefix = f"{request.node.name[:60]}-{os.urandom(4).hex()}".replace("[", "-").replace("]", "")
    return s3_env.url(prefix)


NOBODY = 65534  # the unprivileged user tests run cairn as, where root would read everything


@pytest.fixture
def unprivileged_base(tmp_path: Path) -> Iterator[Path]:
    """A directory the unprivileged user can use (pytest's own tmp dirs are root-only)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    base = Path(tempfile.mkdtemp(prefix="cairn-test-nobody-", dir="/tmp"))
    try:
        os.chown(base, NOBODY, NOBODY)
        yield base
    finally:
        shutil.rmtree(base)
