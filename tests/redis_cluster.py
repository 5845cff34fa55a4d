"""A local Redis Cluster for the tests: three primaries and a replica each, from Debian's
``redis-server``, on free ports in a temporary directory.

The cluster bus of each node gets a free port of its own (``cluster-port``), not the
client port + 10000 that may not exist above port 55535. A node is declared failed after
``cluster-node-timeout`` (1 s here), so a killed primary's replica takes over within a few
seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from engine.runtime.embedded import Child, free_port, spawn

__all__ = ["LocalCluster", "start_cluster"]

NODE_TIMEOUT_MS = 1000
_START_TIMEOUT_S = 30.0


@dataclass
class LocalCluster:
    workdir: Path
    nodes: dict[int, Child] = field(default_factory=dict)  # client port -> process
    argv: dict[int, list[str]] = field(default_factory=dict)  # how each was started

    @property
    def url(self) -> str:
        """A URL naming one live node (what CREDITFLOW_REDIS_URL holds)."""
        return f"redis://127.0.0.1:{self.live_ports()[0]}/0"

    def live_ports(self) -> list[int]:
        return [port for port, child in self.nodes.items() if child.process.poll() is None]

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)

    def ask(self, port: int, *command: str) -> object:
        client = self.client(port)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def info(self, port: int, section: str) -> dict[str, str]:
        raw = self.ask(port, "INFO", section)
        assert isinstance(raw, dict)
        return {str(k): str(v) for k, v in raw.items()}

    def roles(self) -> dict[int, str]:
        """Each live node's own role: ``master`` or ``slave``."""
        return {port: self.info(port, "replication")["role"] for port in self.live_ports()}

    def primaries(self) -> list[int]:
        return sorted(port for port, role in self.roles().items() if role == "master")

    def replica_of(self, primary: int) -> int:
        """A live replica of ``primary`` whose replication link is up."""
        for port in self.live_ports():
            info = self.info(port, "replication")
            if (
                info["role"] == "slave"
                and int(info["master_port"]) == primary
                and info["master_link_status"] == "up"
            ):
                return port
        raise AssertionError(f"no live replica of {primary}")

    def primary_of_slot(self, slot: int) -> int:
        for entry in self.ask(self.live_ports()[0], "CLUSTER", "SLOTS"):  # type: ignore[attr-defined]
            if int(entry[0]) <= slot <= int(entry[1]):
                return int(entry[2][1])
        raise AssertionError(f"slot {slot} is not served")

    def wait_ok(self, timeout: float = _START_TIMEOUT_S) -> None:
        """Until every live node says ``cluster_state:ok``, every slot is served by a live
        primary, and every replica's link to its primary is up."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._ok():
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "the Redis Cluster did not become ok"
            time.sleep(0.1)

    def _ok(self) -> bool:
        live = set(self.live_ports())
        for port in live:
            info = self.ask(port, "CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text:
                return False
            replication = self.info(port, "replication")
            if replication["role"] == "slave" and (
                replication["master_link_status"] != "up"
                or int(replication["master_port"]) not in live
            ):
                return False
        served = {int(e[2][1]) for e in self.ask(min(live), "CLUSTER", "SLOTS")}  # type: ignore[attr-defined]
        return served <= live and set(self.primaries()) == served

    def failover(self, primary: int) -> int:
        """``CLUSTER FAILOVER`` on a replica of ``primary`` (no write is lost: the replica
        catches up first); returns the new primary once the cluster is ok again."""
        replica = self.replica_of(primary)
        self.ask(replica, "CLUSTER", "FAILOVER")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while self.info(replica, "replication")["role"] != "master":
            assert time.monotonic() < deadline, "the manual failover did not happen"
            time.sleep(0.02)
        self.wait_ok()
        return replica

    def kill(self, port: int) -> None:
        """SIGKILL: the node's replica takes over once the others have seen it fail (about
        ``NODE_TIMEOUT_MS`` and an election)."""
        self.nodes[port].kill()

    def restart(self, port: int) -> None:
        """Start a killed node again: it rejoins (its nodes.conf) as a replica, empty."""
        node_dir = self.workdir / str(port)
        self.nodes[port] = spawn("redis", self.argv[port], os.environ, node_dir / "redis.log")

    def stop(self) -> None:
        for child in self.nodes.values():
            child.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_cluster(workdir: Path, primaries: int = 3) -> LocalCluster:
    """Start ``primaries`` primaries and a replica each, and form the cluster."""
    binary = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    assert binary and cli, "redis-server and redis-cli are needed (apt-get install redis-server)"
    cluster = LocalCluster(workdir)
    try:
        for _ in range(primaries * 2):
            port, bus = free_port(), free_port()
            node_dir = workdir / str(port)
            node_dir.mkdir(parents=True)
            argv = [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--cluster-enabled", "yes",
                "--cluster-port", str(bus),
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(node_dir),
            ]  # fmt: skip
            cluster.argv[port] = argv
            cluster.nodes[port] = spawn("redis", argv, os.environ, node_dir / "redis.log")
        deadline = time.monotonic() + _START_TIMEOUT_S
        for port in cluster.nodes:
            while True:
                try:
                    if cluster.ask(port, "PING"):
                        break
                except redis.RedisError:
                    assert time.monotonic() < deadline, f"redis-server on {port} did not start"
                    time.sleep(0.05)
        addresses = [f"127.0.0.1:{port}" for port in cluster.nodes]
        create = [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1"]
        subprocess.run(
            [*create, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=_START_TIMEOUT_S,
        )
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    return cluster
