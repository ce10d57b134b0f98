"""One run of a job at a time on this machine: an advisory lock on a file per job.

The lock is ``flock(2)`` on ``$XDG_STATE_HOME/cairn/locks/job-NAME.lock`` (usually
``~/.local/state/cairn/``): the kernel drops it when the process ends, however it ends, so a
crashed run never leaves a stale lock behind. The file holds the pid of the holder, to name it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

import platformdirs

from cairn.core.errors import CairnError


class JobBusy(CairnError):
    """The job is running already (started by a timer, cron or another shell)."""


def lock_dir() -> Path:
    return Path(platformdirs.user_state_dir("cairn")) / "locks"


class JobLock:
    def __init__(self, job: str, directory: Path | None = None) -> None:
        self.job = job
        self.path = (directory or lock_dir()) / f"job-{job}.lock"
        self._fd = -1

    def __enter__(self) -> JobLock:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            by = f" (pid {holder})" if holder.isdigit() else ""
            raise JobBusy(f"job {self.job} is already running{by}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd >= 0:
            # The file stays: removing it could let a waiting process lock a dead inode while a
            # third one creates and locks a new file.
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = -1
