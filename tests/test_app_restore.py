"""The restore and dump use cases called as a front end other than the command line would:
a session, a typed request, an events sink; a typed result back, nothing printed."""

from __future__ import annotations

import io
import os
from contextlib import nullcontext
from pathlib import Path

from cairn.app.context import RepoSpec, open_session
from cairn.app.dump import DumpRequest, dump
from cairn.app.events import NullEvents
from cairn.app.passwords import PasswordSource
from cairn.app.restore import NullRestoreEvents, RestoreRequest, restore
from tests.craft import regular_files


def test_restore_and_dump_use_cases(tmp_path: Path, repo_path: Path, run_cli, capfd) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    files = {"a.txt": b"a\n" * 100, "d/b.bin": os.urandom(3 << 20), "d/c.txt": b"c"}
    for name, data in files.items():
        (src / name).write_bytes(data)
    assert run_cli("backup", "--repo", repo_path, src).code == 0
    capfd.readouterr()
    session = open_session(RepoSpec(url=str(repo_path), password=PasswordSource()))

    events = NullRestoreEvents()
    request = RestoreRequest("latest", str(tmp_path / "out"), path=str(src), exclude=("*.txt",))
    result = restore(session, request, events)
    assert not result.pending and result.thaw is None and len(result.snapshot) == 64
    assert result.summary is not None and result.summary.files == 1
    assert result.summary.errors == 0 and events.warnings == [] and events.thaws == []
    assert regular_files(tmp_path / "out") == {"d/b.bin": files["d/b.bin"]}

    sink = io.BytesIO()
    done = dump(
        session.reopened(),
        DumpRequest(result.snapshot[:8], f"{src}/d/b.bin", lambda: nullcontext(sink)),
        NullEvents(),
    )
    assert done.snapshot == result.snapshot and done.summary.kind == "file"
    assert sink.getvalue() == files["d/b.bin"]
    assert capfd.readouterr() == ("", "")  # a use case never prints
