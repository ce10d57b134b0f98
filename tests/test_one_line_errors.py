"""Mistakes and hostile conditions that used to end in a traceback: each is one line on stderr,
a non-zero exit, and nothing changed. Commands run as a separate process, as a user runs them;
the full disk is a real (small, mounted) file system, or a device node that is always full."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cairn.app.events import NullEvents
from cairn.app.jobs import JobRunner
from cairn.app.repositories import EnvPassword
from cairn.config.load import load_config
from cairn.core.errors import UsageError
from tests.craft import create_repo, listing, repo_listing
from tests.test_faults import _small_disk

MIB = 1 << 20


def one_line_error(res) -> str:  # type: ignore[no-untyped-def]
    assert res.code != 0 and "Traceback" not in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    return res.err


@pytest.fixture
def backed_up(tmp_path: Path, cairn_proc) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A repository with one snapshot of ``src`` (a 2 MiB file and a small one)."""
    repo = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(2 * MIB))
    (src / "small.txt").write_text("small\n")
    res = cairn_proc("backup", "--repo", repo, src)
    assert res.code == 0, res.err
    return repo, src


# ---------------------------------------------------------------------- empty passwords
@pytest.mark.parametrize("source", ["env", "file", "command"])
def test_init_refuses_an_empty_password(tmp_path, cairn_proc, source):
    empty = tmp_path / "pw"
    empty.write_text("\n")
    args, env = {
        "env": ([], {"CAIRN_PASSWORD": ""}),
        "file": (["--password-file", empty], {}),
        "command": (["--password-command", "echo"], {}),
    }[source]
    res = cairn_proc("init", "--repo", tmp_path / "repo", *args, env=env)
    assert res.code == 2 and "an empty password is not allowed" in one_line_error(res)
    assert not (tmp_path / "repo").exists()


def test_opening_with_an_empty_password_says_so(backed_up, cairn_proc):
    repo, _ = backed_up
    before = repo_listing(repo)
    err = one_line_error(cairn_proc("snapshots", "--repo", repo, env={"CAIRN_PASSWORD": ""}))
    assert "wrong password" in err and "the password is empty" in err
    assert repo_listing(repo) == before


def test_a_configured_password_variable_that_is_empty(monkeypatch):
    monkeypatch.setenv("CAIRN_TEST_PW", "")
    with pytest.raises(UsageError, match="CAIRN_TEST_PW is empty: an empty password"):
        EnvPassword(name="CAIRN_TEST_PW").get()
    monkeypatch.delenv("CAIRN_TEST_PW")
    with pytest.raises(UsageError, match="CAIRN_TEST_PW is not set"):
        EnvPassword(name="CAIRN_TEST_PW").get()


# ---------------------------------------------------------------------- paths that are files
def test_init_on_a_regular_file(tmp_path, cairn_proc):
    path = tmp_path / "afile"
    path.write_text("not a repository\n")
    err = one_line_error(cairn_proc("init", "--repo", path))
    assert f"{path} exists and is not a directory" in err
    assert path.read_text() == "not a repository\n"


def test_restore_into_a_regular_file(tmp_path, backed_up, cairn_proc):
    repo, _ = backed_up
    target = tmp_path / "afile"
    target.write_text("keep me\n")
    err = one_line_error(cairn_proc("restore", "--repo", repo, "latest", "--target", target))
    assert f"cannot restore into {target}: not a directory" in err
    assert target.read_text() == "keep me\n"


def test_a_cache_dir_that_is_a_regular_file(tmp_path, backed_up, cairn_proc):
    repo, src = backed_up
    cache = tmp_path / "afile"
    cache.write_text("keep me\n")
    before = repo_listing(repo)
    err = one_line_error(cairn_proc("backup", "--repo", repo, src, "--cache-dir", cache))
    assert f"cache directory {cache} exists and is not a directory" in err
    assert cache.read_text() == "keep me\n"
    err = one_line_error(cairn_proc("backup", "--repo", repo, src, "--cache-dir", cache / "sub"))
    assert f"cannot create cache directory {cache / 'sub'}: Not a directory" in err
    assert repo_listing(repo) == before


def test_a_password_command_with_an_unbalanced_quote(backed_up, cairn_proc):
    repo, _ = backed_up
    err = one_line_error(cairn_proc("snapshots", "--repo", repo, "--password-command", "echo 'pw"))
    assert "cannot parse the password command: No closing quotation" in err


# ---------------------------------------------------------------------- a full disk
def test_dump_to_a_full_file_system(tmp_path, backed_up, cairn_proc):
    repo, src = backed_up
    with _small_disk(tmp_path / "disk", "1m") as mounted:
        if not mounted:
            pytest.skip("this sandbox cannot mount a file system")
        out = tmp_path / "disk" / "big.bin"
        err = one_line_error(
            cairn_proc("dump", "--repo", repo, "latest", src / "big.bin", "-o", out)
        )
        assert f"cannot write {out}: No space left on device" in err
        assert not out.exists()  # no partial file that looks complete
        assert os.listdir(tmp_path / "disk") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_dump_to_a_full_device_leaves_the_device_alone(tmp_path, backed_up, cairn_proc):
    """A node like /dev/full (every write fails with ENOSPC) of the test's own: the error is one
    line, and the failed dump never removes a target that is not a regular file."""
    repo, src = backed_up
    full = tmp_path / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    before = listing(tmp_path, exclude=[tmp_path / "repo"])
    for path in ("big.bin", ""):  # a file, and a directory as a tar stream
        err = one_line_error(cairn_proc("dump", "--repo", repo, "latest", src / path, "-o", full))
        assert f"cannot write {full}: No space left on device" in err
        assert stat.S_ISCHR(os.lstat(full).st_mode)
    assert listing(tmp_path, exclude=[tmp_path / "repo"]) == before


# ---------------------------------------------------------------------- healthcheck URLs
@pytest.mark.parametrize("url", ["http://[::1", "http://host:port/x", "http://[zz]/uuid"])
def test_a_malformed_healthcheck_url_is_a_config_error(tmp_path, cairn_proc, url):
    repo = create_repo(tmp_path / "repo")
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[repositories.main]\nurl = "{repo}"\npassword-env = "CAIRN_PASSWORD"\n\n'
        f'[jobs.h]\nrepository = "main"\npaths = ["{tmp_path}"]\nhealthcheck = "{url}"\n'
    )
    err = one_line_error(cairn_proc("run", "--config", cfg))
    assert f"{cfg}:8: jobs.h.healthcheck: the URL is malformed" in err


@pytest.mark.parametrize("url", ["http://[::1", "http://host:port/x", "http://[zz]/uuid"])
def test_a_malformed_healthcheck_url_never_fails_the_job(tmp_path, url):
    """Whatever URL reaches the job (here past the configuration's checks), the backup runs and
    the monitor's problem is a warning."""
    repo = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[repositories.main]\nurl = "{repo}"\npassword-env = "CAIRN_PASSWORD"\n\n'
        f'[jobs.h]\nrepository = "main"\npaths = ["{src}"]\n'
    )
    job = load_config(cfg).jobs["h"]
    object.__setattr__(job, "healthcheck", url)
    warnings: list[str] = []
    result = JobRunner(job, NullEvents(), warnings.append).run()
    assert result.status == "ok" and result.snapshot is not None, result.error
    assert len(warnings) == 2 and all("healthcheck" in w and "malformed" in w for w in warnings)
    assert "uuid" not in " ".join(warnings)
