"""SeaweedFS as a cluster on loopback, one process per service: a master, three volume servers
(every volume written twice, replication ``001``: two servers of one rack), a filer and the S3
gateway, with the identities, credentials and bucket of tests/s3server.py.

Any one process can be killed (SIGKILL, as a crash) and started again on its ports and data,
so tests and benchmarks can take a volume server or the gateway away while cairn runs.

    cluster = s3cluster.start(directory)
    cluster.kill("volume2"); ...; cluster.restart("volume2")
    cluster.kill("s3"); ...; cluster.restart("s3")
    cluster.stop()
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.s3server import (
    S3Access,
    create_bucket,
    pick_base,
    wait_answering,
    weed,
    write_identities,
)

VOLUMES = ("volume1", "volume2", "volume3")
REPLICATION = "001"
# port offsets from the base port; each service's gRPC port is GRPC further (not SeaweedFS's
# default of +10000, which lands in Linux's ephemeral range from 32768, where the clients'
# own connections may take it between the check and the start)
_OFFSETS = {"master": 0, "volume1": 1, "volume2": 2, "volume3": 3, "filer": 4, "s3": 5}
GRPC = 8
_PORTS = 2 * GRPC  # the gateway's Iceberg and Lance ports are off


@dataclass
class Service:
    """One ``weed`` process: its arguments, log and (while it runs) process."""

    name: str
    args: list[str]
    log_path: Path
    health_url: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} runs"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_answering(self.health_url, self.proc, self.log_path, f"weed {self.name}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


@dataclass
class SeaweedCluster(S3Access):
    endpoint: str
    data_dir: Path
    master_url: str
    services: dict[str, Service] = field(default_factory=dict)

    def kill(self, name: str) -> None:
        """Kills one service at once (SIGKILL: no goodbye to the master, no flush)."""
        self.services[name].signal(signal.SIGKILL)

    def restart(self, name: str) -> None:
        """Starts a killed service again, on its ports and data, and waits until it serves: a
        volume server until the master counts it again."""
        self.services[name].start()
        if name in VOLUMES:
            self.wait_volume_servers(len(VOLUMES))

    def volume_servers(self) -> int:
        """How many volume servers the master counts as alive."""
        with urllib.request.urlopen(f"{self.master_url}/dir/status", timeout=5) as r:
            topo = json.load(r)["Topology"]
        return sum(
            len(rack.get("DataNodes") or [])
            for dc in topo.get("DataCenters") or []
            for rack in dc.get("Racks") or []
        )

    def wait_volume_servers(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.volume_servers() == count:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the master did not count {count} volume servers in {timeout:.0f} s")

    def logs(self, tail: int = 2000) -> str:
        return "\n".join(
            f"--- {s.name}\n{s.log_path.read_text(errors='replace')[-tail:]}"
            for s in self.services.values()
        )

    def stop(self) -> None:
        for name in reversed(list(self.services)):
            self.services[name].signal(signal.SIGTERM)


def start(data_dir: Path) -> SeaweedCluster:
    """Starts the cluster with its data under ``data_dir`` (which must exist) and creates the
    test bucket."""
    base = pick_base(_PORTS, grpc=False)
    port = {name: base + k for name, k in _OFFSETS.items()}
    ip = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    # an address with its gRPC port: ip:port.grpc_port
    master = f"127.0.0.1:{port['master']}.{port['master'] + GRPC}"
    filer = f"127.0.0.1:{port['filer']}.{port['filer'] + GRPC}"

    def grpc(name: str) -> str:
        return f"-port.grpc={port[name] + GRPC}"

    def url(name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{port[name]}{path}"

    args: dict[str, list[str]] = {}
    (data_dir / "master").mkdir()
    args["master"] = [
        *ip,
        f"-port={port['master']}",
        grpc("master"),
        f"-mdir={data_dir / 'master'}",
        f"-defaultReplication={REPLICATION}",
        "-volumeSizeLimitMB=64",
        "-peers=none",
        "-telemetry=false",
    ]
    for name in VOLUMES:
        (data_dir / name).mkdir()
        args[name] = [
            *ip,
            f"-port={port[name]}",
            grpc(name),
            f"-dir={data_dir / name}",
            f"-master={master}",
            "-max=30",
            "-preStopSeconds=0",
            "-minFreeSpace=1GiB",
        ]
    (data_dir / "filer").mkdir()
    args["filer"] = [
        *ip,
        f"-port={port['filer']}",
        grpc("filer"),
        f"-master={master}",
        f"-defaultStoreDir={data_dir / 'filer'}",
        f"-defaultReplicaPlacement={REPLICATION}",
        f"-localSocket={data_dir / 'filer.sock'}",
    ]
    config = write_identities(data_dir / "s3.json")
    args["s3"] = [
        *ip,
        f"-port={port['s3']}",
        grpc("s3"),
        f"-filer={filer}",
        f"-config={config}",
        "-port.iceberg=0",
        "-port.lance=0",
        f"-localSocket={data_dir / 's3.sock'}",
    ]
    health = {
        "master": url("master", "/cluster/status"),
        **{name: url(name, "/status") for name in VOLUMES},
        "filer": url("filer", "/"),
        "s3": url("s3"),
    }
    cluster = SeaweedCluster(url("s3"), data_dir, url("master"))
    for name in _OFFSETS:
        cmd = "volume" if name in VOLUMES else name
        cluster.services[name] = Service(
            name, [weed(), cmd, *args[name]], data_dir / f"{name}.log", health[name]
        )
    try:
        for name in _OFFSETS:
            cluster.services[name].start()
            if name == VOLUMES[-1]:
                cluster.wait_volume_servers(len(VOLUMES))
        create_bucket(cluster.client())
    except BaseException:
        cluster.stop()
        raise
    return cluster
