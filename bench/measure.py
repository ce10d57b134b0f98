"""Running one command and measuring it: wall time, CPU seconds and peak RSS (from wait4,
which covers the process and the children it waited for)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass


@dataclass
class Measurement:
    wall: float
    cpu: float
    max_rss_mib: float
    returncode: int
    stdout: bytes
    stderr: bytes


def run(
    cmd: list[str] | str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    ok: tuple[int, ...] = (0,),
) -> Measurement:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdout=out,
            stderr=err,
            shell=isinstance(cmd, str),
        )
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        m = Measurement(
            wall,
            ru.ru_utime + ru.ru_stime,
            ru.ru_maxrss / 1024,
            proc.returncode,
            out.read(),
            err.read(),
        )
    if m.returncode not in ok:
        shown = cmd if isinstance(cmd, str) else " ".join(cmd)
        raise RuntimeError(
            f"{shown} failed ({m.returncode}): {m.stderr.decode(errors='replace')[-3000:]}"
        )
    return m


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def dir_size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total
