"""cairn serve: a web interface to the repositories and jobs (cairn.web)."""

from __future__ import annotations

import importlib
import ipaddress
import os
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import platformdirs

from cairn.app.context import RepoSpec
from cairn.app.passwords import PasswordSource
from cairn.app.repositories import EnvPassword, repo_spec
from cairn.cli.helpformat import CairnCommand, repository_option
from cairn.cli.run import config_option
from cairn.core.errors import UsageError
from cairn.ui.output import Output

DEFAULT_PORT = 8731


def lazy(module: str) -> ModuleType:
    """The web server (Starlette, uvicorn, Jinja2) loads only for this command."""
    return importlib.import_module(module)


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT ('[::1]:8731' for IPv6), or PORT alone (on 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--listen {text}: the port is not a number") from None
    if not 0 <= number <= 65535:
        raise UsageError(f"--listen {text}: no such port")
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve", cls=CairnCommand)
@config_option
@repository_option(
    "-r",
    "--repo",
    "repo",
    metavar="URL",
    help="Serve this repository too (or alone, without a configuration file).",
)
@repository_option("--password-file", metavar="FILE", help="--repo's password: read it from FILE.")
@repository_option("--password-command", metavar="CMD", help="--repo's password: run CMD.")
@click.option(
    "--listen",
    default=f"127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen.",
)
@click.option("--cert", metavar="FILE", help="TLS certificate (PEM): serve HTTPS.")
@click.option("--key", "key_file", metavar="FILE", help="The certificate's private key (PEM).")
@click.option(
    "--insecure-http",
    is_flag=True,
    help="Allow plain HTTP on an address beyond this machine (never the default).",
)
@click.option(
    "--login-password-file",
    metavar="FILE",
    help="Log in with the password in FILE rather than the generated token.",
)
@click.option(
    "--login-password-command", metavar="CMD", help="Log in with the password CMD prints."
)
@click.option(
    "--login-password-env",
    metavar="NAME",
    help="Log in with the password in the environment variable NAME.",
)
@click.option(
    "--state-dir",
    metavar="DIR",
    help="Where the history of operations and the sessions are kept (default: "
    "$CAIRN_STATE_DIR, else the user's state directory, where `cairn run` writes its runs).",
)
def command(
    config_path: str | None,
    repo: str | None,
    password_file: str | None,
    password_command: str | None,
    listen: str,
    cert: str | None,
    key_file: str | None,
    insecure_http: bool,
    login_password_file: str | None,
    login_password_command: str | None,
    login_password_env: str | None,
    state_dir: str | None,
) -> int:
    """Serve a web interface to the repositories and jobs of the configuration file.

    The overview shows each job's last run and next scheduled run; snapshots can be browsed,
    searched, compared, downloaded (a file, or a directory as .tar.gz or .zip) and restored
    into the directories the configuration's [serve] restore-roots allows; jobs, prunes and
    checks run from the page with their progress. Log in with the token printed at start
    (kept in the configuration directory), or a password given by --login-password-*.
    Only this machine can connect unless --listen names another address, which needs
    --cert and --key (HTTPS) or --insecure-http.

    \b
    Examples:
      cairn serve
      cairn serve --repo /srv/backup --password-file ~/.cairn-pass
      cairn serve --listen 0.0.0.0:8731 --cert site.pem --key site.key
    """
    out = Output()
    host, port = parse_listen(listen)
    if bool(cert) != bool(key_file):
        raise UsageError("--cert and --key go together")
    if not is_loopback(host) and not cert and not insecure_http:
        raise UsageError(
            f"{host} is reachable from other machines: give --cert and --key, or --insecure-http"
        )
    web_settings = lazy("cairn.web.settings")
    specs, jobs, roots = _repositories(config_path, repo, password_file, password_command)
    chosen = [s for s in (login_password_file, login_password_command, login_password_env) if s]
    if len(chosen) > 1:
        raise UsageError("give one of --login-password-file, -command and -env")
    if login_password_env:
        secret = EnvPassword(name=login_password_env).get().decode()
    elif chosen:
        source = PasswordSource(file=login_password_file, command=login_password_command)
        secret = source.get().decode()
    else:
        secret = web_settings.login_token(Path(platformdirs.user_config_dir("cairn")))
    settings = web_settings.Settings(
        secret=secret,
        state_dir=Path(state_dir) if state_dir else lazy("cairn.app.history").state_dir(),
        repositories=specs,
        jobs=jobs,
        restore_roots=roots,
        secure_cookie=bool(cert),
    )
    app = lazy("cairn.web.app").create_app(settings)
    for name, problem in app.state.server.repos.open_all().items():
        out.warning(f"repository {name}: {problem}")
    sock = _bind(host, port)  # before the link is printed: a click on it is never refused
    port = sock.getsockname()[1]
    scheme = "https" if cert else "http"
    shown = f"[{host}]" if ":" in host else host
    link = f"{scheme}://{shown}:{port}/login"
    out.line(f"cairn serve: {link}" + ("" if chosen else f"?token={secret}"))
    sys.stdout.flush()  # the link, now: a service manager's log is a pipe
    uvicorn = lazy("uvicorn")
    config = uvicorn.Config(app, ssl_certfile=cert, ssl_keyfile=key_file, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    return sock


def _repositories(
    config_path: str | None,
    repo: str | None,
    password_file: str | None,
    password_command: str | None,
) -> tuple[dict[str, RepoSpec], dict[str, Any], tuple[str, ...]]:
    """The repositories (name -> spec), jobs and restore roots to serve."""
    load = lazy("cairn.config.load")
    path = config_path or load.default_path()
    specs: dict[str, RepoSpec] = {}
    jobs: dict[str, Any] = {}
    roots: tuple[str, ...] = ()
    if config_path or os.path.exists(path) or not repo:
        config = load.load_config(path)
        specs = {name: repo_spec(r) for name, r in config.repositories.items()}
        jobs = {name: j for name, j in config.jobs.items() if j.mirror is None}
        roots = config.serve.restore_roots
    if repo:
        specs["repo"] = RepoSpec(
            url=repo, password=PasswordSource(file=password_file, command=password_command)
        )
    if not specs:
        raise UsageError(f"nothing to serve: {path} names no repositories, and no --repo given")
    return specs, jobs, roots
