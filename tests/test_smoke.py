from __future__ import annotations

import os

from tests.treecmp import describe, diff


def test_backup_restore_round_trip(tmp_path, repo_path, run_cli):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello")
    (src / "sub" / "b.bin").write_bytes(os.urandom(3 << 20))
    os.symlink("a.txt", src / "link")
    before = describe(src)
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    res = run_cli("restore", "--repo", repo_path, f"latest:{src}", "--target", tmp_path / "out")
    assert res.code == 0, res.err
    assert diff(before, describe(tmp_path / "out")) == []
