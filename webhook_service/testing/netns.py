"""Hosts as Linux network namespaces on a private bridge: hubhook spread over machines, on one machine.

Why namespaces: a test that says "handlers run on hosts B and C, and B dies" must give each host its
own network stack and its own address, so nothing reaches Redis through loopback by accident and a
host's death is every one of its processes dying at once (``Host.kill_all``). Each ``Host`` is a
namespace with one veth into a bridge this module creates; the root namespace keeps the bridge's
first address, so the test process (the fake HubSpot, the sender) talks to every host over the bridge.

Creating namespaces needs root (CAP_NET_ADMIN) and ``ip`` (iproute2); ``unavailable()`` says why not,
for a skip reason. Names carry the creating pid (``hh<pid>a``) so parallel runs never collide, and
``Network.close`` deletes every namespace, veth and the bridge it made, after SIGKILLing whatever still
runs in its namespaces: only what this object created is ever touched.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from webhook_service.devstack import redis_binary

HUBHOOK = str(Path(sys.executable).with_name("hubhook"))


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=10)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (a skip reason), or None when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_NET_ADMIN)"
    probe = f"hh{os.getpid()}probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()[:120]}"
    _ip("netns", "del", probe, check=False)
    return None


class Host:
    """One namespace with an address on the bridge; commands started in it are remembered for cleanup."""

    def __init__(self, network: Network, letter: str, address: str) -> None:
        self.network, self.letter, self.address = network, letter, address
        self.name = f"{network.tag}{letter}"
        self.processes: list[subprocess.Popen] = []

    def popen(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        """Start ``args`` inside this host, output to ``log``, in a session of its own."""
        with open(log, "ab") as out:
            process = subprocess.Popen(["ip", "netns", "exec", self.name, *args], env=env, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(process)
        return process

    def hubhook(self, command: str, env: dict[str, str], log_dir: Path, *args: str) -> subprocess.Popen:
        """``hubhook <command>`` on this host; HUBHOOK_HOST names the host to the handlers."""
        return self.popen([HUBHOOK, command, *args], {**env, "HUBHOOK_HOST": self.letter},
                          log_dir / f"{command}-{self.letter}-{len(self.processes)}.log")

    def redis(self, port: int, directory: Path, log_dir: Path) -> subprocess.Popen:
        """A redis-server listening on this host's address (AOF on, as docs/deployment.md asks)."""
        directory.mkdir(parents=True, exist_ok=True)
        return self.popen([redis_binary(), "--port", str(port), "--bind", self.address, "--save", "",
                           "--dir", str(directory), "--appendonly", "yes", "--appendfsync", "everysec",
                           "--protected-mode", "no"], dict(os.environ), log_dir / f"redis-{self.letter}.log")

    def pids(self) -> list[int]:
        """Every process running in this namespace (``ip netns pids``)."""
        out = _ip("netns", "pids", self.name, check=False).stdout
        return [int(pid) for pid in out.split()]

    def kill_all(self) -> list[int]:
        """SIGKILL every process in the namespace at once: the host is gone. Returns the pids killed."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        return pids

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM what this host runs (a warm shutdown), then SIGKILL whatever is left."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.kill_all()


class Network:
    """A bridge and ``letters`` namespaces on it, e.g. hosts a, b, c at 10.<x>.<y>.2, .3, .4."""

    def __init__(self, letters: str = "abc") -> None:
        pid = os.getpid()
        self.tag = f"hh{pid % 100000}"
        self.bridge = f"{self.tag}br"
        self.subnet = f"10.{200 + pid % 50}.{(pid // 50) % 250}"
        self.gateway = f"{self.subnet}.1"
        self.hosts: dict[str, Host] = {}
        self._made: list[tuple[str, str]] = []    # ("netns"|"link", name), deleted in reverse
        try:
            self._create(letters)
        except BaseException:
            self.close()
            raise

    def _create(self, letters: str) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(("link", self.bridge))
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for index, letter in enumerate(letters):
            host = Host(self, letter, f"{self.subnet}.{index + 2}")
            outer, inner = f"{self.tag}{letter}o", f"{self.tag}{letter}i"
            _ip("netns", "add", host.name)
            self._made.append(("netns", host.name))
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            self._made.append(("link", outer))   # deleting one end deletes its peer
            _ip("link", "set", outer, "master", self.bridge)
            _ip("link", "set", outer, "up")
            _ip("link", "set", inner, "netns", host.name)
            _ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", inner)
            _ip("-n", host.name, "link", "set", inner, "up")
            _ip("-n", host.name, "link", "set", "lo", "up")
            _ip("-n", host.name, "route", "add", "default", "via", self.gateway)
            self.hosts[letter] = host

    def __getitem__(self, letter: str) -> Host:
        return self.hosts[letter]

    def close(self) -> None:
        """Stop every process of every host, then delete the namespaces, veths and bridge made here."""
        for host in self.hosts.values():
            host.stop_all(timeout=5)
        for kind, name in reversed(self._made):
            _ip(kind, "del", name, check=False)
        self._made.clear()

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Deployment:
    """hubhook spread over a ``Network``: Redis and ``hubhook web`` on host a, workers and pollers where asked.

    ``env`` is what every host's processes get: Redis on a's address (db 0 for hubhook, db 1 for a
    test's ledger, ``LEDGER_REDIS_URL``), the HubSpot API at ``api_base_url`` (the fake, served from the
    root namespace on the bridge's gateway address), plus ``extra``.
    """

    def __init__(self, network: Network, log_dir: Path, *, api_base_url: str, secret: str, token: str,
                 handlers: str, extra: dict[str, str] | None = None, web_host: str = "a") -> None:
        self.network, self.log_dir = network, log_dir
        web = network[web_host]
        redis_port, self.port = 6379, 8000   # each namespace has its own ports: nothing else listens there
        self.redis_url = f"redis://{web.address}:{redis_port}/0"
        self.ledger_url = f"redis://{web.address}:{redis_port}/1"
        self.url = f"http://{web.address}:{self.port}/webhooks/hubspot"
        self.env = {**os.environ, "REDIS_URL": self.redis_url, "LEDGER_REDIS_URL": self.ledger_url,
                    "HUBSPOT_CLIENT_SECRET": secret, "HUBSPOT_ACCESS_TOKEN": token,
                    "HUBSPOT_API_BASE_URL": api_base_url, "HUBHOOK_HANDLERS": handlers,
                    "PORT": str(self.port), "HUBHOOK_BIND_HOST": web.address, "WEB_CONCURRENCY": "2",
                    "HUBHOOK_WEBHOOK_URL": self.url, "HUBSPOT_BURST_LIMIT": "100000", **(extra or {})}
        web.redis(redis_port, log_dir / "redis-data", log_dir)
        self._wait(lambda: self._redis_up(), 15, "redis-server on host a")
        web.hubhook("web", self.env, log_dir)
        self._wait(self._web_up, 30, "hubhook web on host a to answer /healthz")

    def worker(self, letter: str, *args: str) -> subprocess.Popen:
        return self.network[letter].hubhook("worker", self.env, self.log_dir, *args)

    def poller(self, letter: str) -> subprocess.Popen:
        return self.network[letter].hubhook("poll", self.env, self.log_dir)

    def _redis_up(self) -> bool:
        from redis import Redis
        from redis.exceptions import RedisError

        try:
            with Redis.from_url(self.redis_url, socket_connect_timeout=0.5) as client:
                return bool(client.ping())
        except RedisError:
            return False

    def _web_up(self) -> bool:
        import requests

        try:
            return requests.get(self.url.replace("/webhooks/hubspot", "/healthz"), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    @staticmethod
    def _wait(predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.1)
