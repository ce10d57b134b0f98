"""--memory-limit: a backup to S3 and a restore from it stay within the limit (plus what any
command costs: the interpreter, its libraries and the password's key derivation), measured as
the cairn process's own peak RSS; a local backup with packs too large for the limit builds them
in temporary files; a temporary directory that fills up is one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.treecmp import describe

MIB = 1 << 20


def cairn(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    """Runs cairn in a process of its own: (exit code, stdout and stderr, peak RSS in MiB)."""
    with subprocess.Popen(
        [sys.executable, "-m", "cairn", *map(os.fspath, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    ) as proc:
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out, usage.ru_maxrss / 1024


def make_data(root: Path, mib: int) -> Path:
    """Incompressible files (nothing deduplicates or shrinks), 8 MiB each, and small ones."""
    root.mkdir()
    for i in range(mib // 8):
        (root / f"big{i}.bin").write_bytes(os.urandom(8 * MIB))
    for i in range(50):
        (root / f"small{i}.txt").write_text(f"file {i}\n" * (i + 1))
    return root


def test_backup_and_restore_on_s3_stay_within_the_limit(tmp_path, s3_url):
    src = make_data(tmp_path / "src", 160)
    code, out, _ = cairn("init", "--repo", s3_url)
    assert code == 0, out
    code, out, baseline = cairn("snapshots", "--repo", s3_url)  # what any command costs
    assert code == 0, out

    code, out, peak = cairn("backup", "--repo", s3_url, src, "--memory-limit", "64M")
    assert code == 0, out
    assert "memory limit 64 MiB: 6 uploads in flight, data packs built in temporary files" in out
    # 160 MiB went through 40 MiB packs, six uploads at a time: held in memory, they would
    # take over 160 MiB
    assert peak <= baseline + 64, (peak, baseline)

    target = tmp_path / "restored"
    code, out, peak = cairn(
        "restore", "--repo", s3_url, "latest", "--target", target, "--memory-limit", "64M"
    )
    assert code == 0, out
    assert "memory limit 64 MiB: 1 restore threads" in out
    assert peak <= baseline + 64, (peak, baseline)
    assert describe(target / src.relative_to("/")) == describe(src)


def test_a_local_backup_spools_packs_that_do_not_fit(tmp_path):
    repo = tmp_path / "repo"
    src = make_data(tmp_path / "src", 64)
    code, out, _ = cairn("init", "--repo", repo, "--pack-size", "32M")
    assert code == 0, out
    code, out, _ = cairn("backup", "--repo", repo, src)  # 2 x 32 MiB fit in the default
    assert code == 0 and "data packs built in memory" in out, out
    (src / "new.bin").write_bytes(os.urandom(40 * MIB))
    for i in range(0, 8, 2):
        (src / f"big{i}.bin").unlink()
    code, out, _ = cairn("backup", "--repo", repo, src, "--memory-limit", "60M")
    assert code == 0 and "data packs built in temporary files" in out, out
    code, out, _ = cairn("forget", "--repo", repo, "--keep-last", "1")
    assert code == 0, out
    # the packs left half used are repacked, the kept half written through temporary files
    code, out, _ = cairn(
        "prune", "--repo", repo, "--max-unused", "0%", "--memory-limit", "60M", "--json"
    )
    assert code == 0, out
    assert json.loads(out)["packs_repacked"] > 0, out
    code, out, _ = cairn("check", "--repo", repo, "--read-data")
    assert code == 0, out
    target = tmp_path / "restored"
    code, out, _ = cairn("restore", "--repo", repo, "latest", "--target", target)
    assert code == 0, out
    assert describe(target / src.relative_to("/")) == describe(src)


def test_a_full_temporary_directory_is_one_clear_error(tmp_path, s3_url):
    spool = tmp_path / "spool"
    spool.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", spool], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("this sandbox cannot mount a small file system")
    try:
        src = make_data(tmp_path / "src", 16)
        assert cairn("init", "--repo", s3_url)[0] == 0
        code, out, _ = cairn("backup", "--repo", s3_url, src, env={"TMPDIR": str(spool)})
        assert code == 1, out
        errors = [line for line in out.splitlines() if "error" in line]
        assert errors == [
            f"cairn: error: cannot write a temporary pack file in {spool}: No space left on device"
        ], out
        code, out, _ = cairn("snapshots", "--repo", s3_url, "--json")
        assert code == 0 and out.strip() == "[]", out
        assert list(spool.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", spool], capture_output=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [("lots", "invalid size 'lots'"), ("16M", "must be at least 48 MiB")],
)
def test_a_bad_limit_is_refused(tmp_path, run_cli, value, message):
    repo = tmp_path / "repo"
    assert run_cli("init", "--repo", repo).code == 0
    res = run_cli("backup", "--repo", repo, tmp_path, "--memory-limit", value)
    assert res.code == 2, res.err
    assert message in res.err
