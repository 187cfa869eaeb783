"""Real Redis topologies on loopback for tests and benches: Sentinel (master, replica, three sentinels).

Why real processes: what must hold (no acknowledged event lost when the master dies and a sentinel
promotes its replica) depends on how Redis replicates and how Sentinel fails over, so the test runs
``redis-server`` and ``redis-server --sentinel`` on free ports, each stopped by its own pid.
"""
from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import cast

from redis import Redis
from redis.exceptions import RedisError

from webhook_service.devstack import free_port, redis_binary

SERVICE = "hubhook"


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Server:
    """One redis-server (or sentinel) of ours, restartable on its port and directory."""

    def __init__(self, directory: Path, args: list[str], *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.directory, self.args = directory, args
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> Server:
        with open(self.directory / "log", "ab") as log:
            self.process = subprocess.Popen([redis_binary(), *self.args, "--port", str(self.port), "--bind",
                                             "127.0.0.1", "--dir", str(self.directory)],
                                            stdout=log, stderr=subprocess.STDOUT)
        _wait(lambda: Redis(port=self.port, socket_connect_timeout=0.5).ping(), 10, f"redis on port {self.port}")
        return self

    def client(self) -> Redis:
        return Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class SentinelGroup:
    """A master, one replica of it and three sentinels watching the master as ``SERVICE``.

    The sentinels need two votes to fail over and call the master down after ``down_after_ms`` without
    an answer, so a killed master is replaced within a few seconds. ``url`` is hubhook's REDIS_URL for it.
    """

    def __init__(self, directory: Path | None = None, *, down_after_ms: int = 1000) -> None:
        self.directory = Path(directory or tempfile.mkdtemp(prefix="hubhook-sentinel-"))
        self.down_after_ms = down_after_ms
        data = ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        self.master = Server(self.directory / "m0", data)
        self.replica = Server(self.directory / "m1", [*data, "--replicaof", "127.0.0.1", str(self.master.port)])
        self.sentinels: list[Server] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelGroup:
        try:
            self.master.start()
            self.replica.start()
            _wait(lambda: self.master.client().info("replication")["connected_slaves"] >= 1 and
                  self.replica.client().info("replication")["master_link_status"] == "up", 15, "the replica to sync")
            for index in range(3):
                port = free_port()
                folder = self.directory / f"s{index}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "sentinel.conf").write_text(
                    f"port {port}\nbind 127.0.0.1\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {SERVICE} 5000\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n")
                self.sentinels.append(Server(folder, [str(folder / "sentinel.conf"), "--sentinel"], port=port).start())
            for sentinel in self.sentinels:   # each knows the replica and the two other sentinels
                _wait(lambda s=sentinel: len(s.client().sentinel_slaves(SERVICE)) >= 1 and
                      len(s.client().sentinel_sentinels(SERVICE)) >= 2, 30, "the sentinels to find each other")
        except BaseException:
            self.stop()
            raise
        return self

    def master_port(self) -> int:
        """The port of the master the sentinels name now."""
        return int(self._master_address(self.sentinels[0])[1])

    @staticmethod
    def _master_address(sentinel: Server) -> tuple:
        """(host, port) of the master ``sentinel`` names now."""
        return cast("tuple", sentinel.client().sentinel_get_master_addr_by_name(SERVICE))

    def current_master(self) -> Server:
        return self.master if self.master_port() == self.master.port else self.replica

    def failed_over(self) -> bool:
        """Every sentinel names the replica as master, and it says it is one."""
        return (all(int(self._master_address(s)[1]) == self.replica.port for s in self.sentinels)
                and self.replica.client().info("replication")["role"] == "master")

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.kill()

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) exists and is free too."""
    while True:
        port = free_port()
        if port + 10000 <= 65535:
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                pass


class RedisClusterGroup:
    """A Redis Cluster of three masters (no replicas) on loopback, made with ``redis-cli --cluster create``.

    ``url`` is hubhook's REDIS_URL for it (``redis+cluster://`` with every node as a startup node).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory or tempfile.mkdtemp(prefix="hubhook-cluster-"))
        self.nodes = [Server(self.directory / f"n{i}", ["--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
                                                         "--cluster-config-file", "nodes.conf",
                                                         "--cluster-node-timeout", "2000"], port=_cluster_port())
                      for i in range(3)]

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node: hubhook's REDIS_URL for this cluster."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes) + "/"

    def start(self) -> RedisClusterGroup:
        try:
            for node in self.nodes:
                node.start()
            cli = str(Path(redis_binary()).with_name("redis-cli"))
            subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                            "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=30)
            for node in self.nodes:
                _wait(lambda n=node: n.client().cluster("info")["cluster_state"] == "ok", 30, "the cluster to be ok")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> RedisClusterGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
