"""The backup tools under comparison, each driven through its own command line with
encryption on: cairn, restic (Debian package) and borg (Debian package, lz4 default)."""

from __future__ import annotations

import compileall
import os
import shlex
import shutil
import sys
from abc import ABC, abstractmethod
from pathlib import Path

from bench.measure import Measurement, dir_size, run

PASSWORD = "benchmark password"


class Tool(ABC):
    name = ""

    def __init__(
        self, work: Path, url: str | None = None, extra_env: dict[str, str] | None = None
    ) -> None:
        self.work = work
        self.repo = work / f"repo-{self.name}"
        self.cache = work / f"cache-{self.name}"
        self.url = url or str(self.repo)  # a local directory unless told otherwise
        self.extra_env = extra_env or {}

    def reset(self) -> None:
        shutil.rmtree(self.repo, ignore_errors=True)
        shutil.rmtree(self.cache, ignore_errors=True)

    @abstractmethod
    def init(self) -> None: ...

    @abstractmethod
    def backup(self, source: Path) -> Measurement: ...

    @abstractmethod
    def restore(self, source: Path, target: Path) -> tuple[Measurement, Path]:
        """Restores the latest snapshot; returns where the source's contents landed."""

    def dump(self, source: Path) -> Measurement:
        """Writes the latest snapshot's ``source`` directory as a tar stream to /dev/null."""
        raise NotImplementedError(f"{self.name} has no dump")

    def repo_size(self) -> int:
        return dir_size(str(self.repo))


class Cairn(Tool):
    name = "cairn"

    def env(self) -> dict[str, str]:
        return {
            "CAIRN_PASSWORD": PASSWORD,
            "CAIRN_CACHE_DIR": str(self.cache),
            "CAIRN_REPOSITORY": self.url,
            **self.extra_env,
        }

    def cmd(self, *args: str) -> list[str]:
        exe = Path(sys.executable).parent / "cairn"
        return [str(exe), *args]

    def init(self) -> None:
        run(self.cmd("init"), self.env())

    def backup(self, source: Path) -> Measurement:
        return run(self.cmd("backup", str(source), "--json"), self.env())

    def restore(self, source: Path, target: Path) -> tuple[Measurement, Path]:
        m = run(self.cmd("restore", f"latest:{source}", "--target", str(target)), self.env())
        return m, target

    def dump(self, source: Path) -> Measurement:
        return run(shlex.join(self.cmd("dump", "latest", str(source))) + " >/dev/null", self.env())


class CairnAt(Cairn):
    """cairn from another source tree (``--baseline``): the same code path as ``cairn``
    (``python -m cairn`` runs the same entry point), with that tree's modules first on the
    path, byte-compiled as the installed ones are."""

    name = "base"

    def __init__(self, work: Path, src: Path) -> None:
        super().__init__(work)
        self.src = src
        compileall.compile_dir(src / "cairn", quiet=1)

    def env(self) -> dict[str, str]:
        return {**super().env(), "PYTHONPATH": str(self.src)}

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cairn", *args]


class Restic(Tool):
    name = "restic"

    def env(self) -> dict[str, str]:
        return {
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_REPOSITORY": self.url,
            "RESTIC_CACHE_DIR": str(self.cache),
            **self.extra_env,
        }

    def init(self) -> None:
        run(["restic", "init"], self.env())

    def backup(self, source: Path) -> Measurement:
        return run(["restic", "backup", "--json", str(source)], self.env())

    def restore(self, source: Path, target: Path) -> tuple[Measurement, Path]:
        m = run(["restic", "restore", "latest", "--target", str(target)], self.env())
        return m, target / str(source).lstrip("/")

    def dump(self, source: Path) -> Measurement:
        return run(
            shlex.join(["restic", "dump", "latest", str(source)]) + " >/dev/null", self.env()
        )


class Borg(Tool):
    name = "borg"

    def env(self) -> dict[str, str]:
        return {
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_REPO": str(self.repo),
            "BORG_CACHE_DIR": str(self.cache),
            "BORG_BASE_DIR": str(self.work / "borg-base"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def init(self) -> None:
        run(["borg", "init", "--encryption=repokey-blake2"], self.env())
        self._n = 0

    def backup(self, source: Path) -> Measurement:
        self._n = getattr(self, "_n", 0) + 1
        return run(["borg", "create", f"::snap-{self._n}", str(source)], self.env())

    def restore(self, source: Path, target: Path) -> tuple[Measurement, Path]:
        target.mkdir(parents=True, exist_ok=True)
        m = run(["borg", "extract", f"::snap-{self._n}"], self.env(), cwd=str(target))
        return m, target / str(source).lstrip("/")


def byte_compile_cairn() -> None:
    """Byte-compiles cairn's modules, as pip does when it installs a package: an editable
    install compiles them again on every run where PYTHONDONTWRITEBYTECODE is set (0.1 s, a
    sixth of an unchanged re-backup here), which restic and borg (byte-compiled by Debian) never
    pay."""
    import cairn

    compileall.compile_dir(Path(cairn.__file__).parent, quiet=1)


PEERS = (("restic", "restic"), ("borgbackup", "borg"))  # (Debian package, executable)


def ensure_installed(peers: tuple[tuple[str, str], ...] = PEERS) -> None:
    """Installs the peer tools of ``peers`` that are missing, from Debian's packages."""
    missing = [p for p, exe in peers if not shutil.which(exe)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"please install {' '.join(missing)} (Debian packages)")
    run("apt-get update -qq", ok=(0, 100))
    run(["apt-get", "install", "-y", "-qq", *missing], {"DEBIAN_FRONTEND": "noninteractive"})
