"""A store that refuses every DELETE (keys without delete permission, an append-only bucket):
backups, reads and checks keep working, and a lock that cannot be removed is a warning, not a
failed backup. The refusal is injected by the fault wrapper around the real store (no
SeaweedFS identity can write without deleting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.app.context import StackHooks, stack_hooks
from cairn.core.errors import StorageError
from cairn.storage.base import Storage
from cairn.storage.faulty import FaultyStorage
from tests.treecmp import describe, diff


def _refusing_deletes(store: Storage) -> Storage:
    faulty = FaultyStorage(store)
    faulty.fail("delete", "", transient=False, error=StorageError("AccessDenied: delete refused"))
    return faulty


@pytest.mark.parametrize("where", ["local", "s3"])
def test_backup_restore_and_check_work_when_deletes_are_refused(
    where: str, tmp_path: Path, run_cli, request
) -> None:  # type: ignore[no-untyped-def]
    repo = str(tmp_path / "repo") if where == "local" else request.getfixturevalue("s3_url")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"x" * 5000)
    assert run_cli("init", "--repo", repo).code == 0
    with stack_hooks(StackHooks(wrappers=(_refusing_deletes,))):
        first = run_cli("backup", "--repo", repo, src)
        assert first.code == 0, first.err
        assert "cannot remove the lock" in first.err and "AccessDenied" in first.err
        (src / "d" / "g").write_text("more")
        second = run_cli("backup", "--repo", repo, src)
        assert second.code == 0, second.err
        check = run_cli("check", "--repo", repo, "--read-data")
        assert check.code == 0, check.err
        out = tmp_path / "out"
        restored = run_cli("restore", "--repo", repo, "latest", "--target", out)
        assert restored.code == 0, restored.err
        assert (
            diff(describe(src, atime=False), describe(out / src.relative_to("/"), atime=False))
            == []
        )
        assert run_cli("snapshots", "--repo", repo).code == 0
