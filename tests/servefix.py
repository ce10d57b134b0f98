"""A served repository for the web interface's tests: a source tree backed up twice by a job of
a configuration file that allows restores into one directory, and the app made for it."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cairn.app.repositories import repo_spec
from cairn.cli.main import main as cli_main
from cairn.config.load import load_config
from cairn.web.app import create_app
from cairn.web.settings import Settings
from tests.craft import create_repo

SECRET = "login-token-for-tests"


@dataclass
class Served:
    root: Path
    repo: Path
    src: Path
    restore_root: Path
    config: Path
    settings: Settings

    def app(self):  # type: ignore[no-untyped-def]
        return create_app(self.settings)


def make_tree(src: Path) -> None:
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "docs" / "report.txt").write_text("quarterly report\n" * 100)
    (src / "docs" / "deep" / "notes.md").write_text("# notes\n")
    (src / "docs" / "deep" / "blob.bin").write_bytes(os.urandom(300_000))
    (src / "photo.jpg").write_bytes(os.urandom(50_000))
    os.symlink("docs/report.txt", src / "link")
    os.chmod(src / "docs" / "deep" / "notes.md", 0o640)


def serve_setup(tmp_path: Path, backups: int = 2) -> Served:
    repo = create_repo(tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    restore_root = tmp_path / "restores"
    restore_root.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[repositories.main]
url = "{repo}"
password-env = "CAIRN_PASSWORD"

[jobs.docs]
repository = "main"
paths = ["{src}"]
schedule = "@daily"

[jobs.docs.retention]
keep-last = 5

[serve]
restore-roots = ["{restore_root}"]
"""
    )
    for i in range(backups):
        if i:
            (src / "docs" / "added.txt").write_text(f"added in backup {i}\n")
        assert cli_main(["run", "-c", str(config), "-q", "docs"]) == 0
    cfg = load_config(str(config))
    settings = Settings(
        secret=SECRET,
        state_dir=tmp_path / "state",
        repositories={n: repo_spec(r) for n, r in cfg.repositories.items()},
        jobs=dict(cfg.jobs),
        restore_roots=cfg.serve.restore_roots,
    )
    return Served(tmp_path, repo, src, restore_root, config, settings)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


@contextmanager
def running_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``app`` served by uvicorn on a free port of 127.0.0.1, on a thread; its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    ready = threading.Event()
    while not server.started and thread.is_alive():
        ready.wait(0.01)  # uvicorn says so with a flag only
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
