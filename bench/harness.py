"""The real processes the benchmarks measure: a private redis-server, gunicorn receivers, hubhook workers.

Why real processes: a figure only means something if it comes from what users run (`hubhook web`
under gunicorn, `hubhook worker`), so nothing here is imported in-process except the fake HubSpot.
Why context managers: every process a bench starts must stop, by its own pid, even when the bench
fails half-way; nothing here ever kills by name.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webhook_service.devstack import RedisProcess, free_port

BIN = Path(sys.executable).parent
SECRET = "bench-client-secret"
TOKEN = "bench-access-token"
#: Both receivers check signatures against this URL, so one file of pre-signed requests serves both.
SIGNED_URL = "https://hooks.example.com/webhooks/hubspot"
#: BENCH_VERBOSE=1 shows the processes' own stderr, for when a bench fails.
_STDERR = None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL
#: `hubhook web`'s gunicorn process layout (webhook_service/cli.py: gevent workers); the bare app gets it too.
WEB_WORKERS = 2


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # SystemExit runs the context managers' cleanup; the default SIGTERM would not


signal.signal(signal.SIGTERM, _exit_on_sigterm)  # bench/run_all.py stops an overrunning bench this way


def gunicorn_flags(port: int, workers: int = WEB_WORKERS) -> list[str]:
    """The flags `hubhook web` passes to gunicorn (kept in step with cli.py by hand), minus its config
    file: that one sets up hubhook's logging and metrics, which are part of what hubhook costs."""
    return ["--bind", f"127.0.0.1:{port}", "--worker-class", "gevent", "--workers", str(workers),
            "--worker-connections", "1000", "--no-control-socket", "--graceful-timeout", "20",
            "--timeout", "30"]


def environment(redis_url: str, **extra: str) -> dict[str, str]:
    """What a user would export for hubhook's processes, pointed at the bench's Redis (log levels and
    everything else left at their defaults: a log line per delivery is part of hubhook's cost)."""
    return {**os.environ, "REDIS_URL": redis_url, "HUBSPOT_CLIENT_SECRET": SECRET, "HUBSPOT_ACCESS_TOKEN": TOKEN,
            "HUBHOOK_WEBHOOK_URL": SIGNED_URL, "PYTHONPATH": str(ROOT), **extra}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def stop(process: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: this process only, by pid."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def redis_server(*, appendonly: bool = True) -> Iterator[RedisProcess]:
    """A private redis-server on a free loopback port; AOF everysec by default, as docs/deployment.md deploys it."""
    server = RedisProcess(appendonly=appendonly).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Server:
    """A running receiver: its webhook URL and the pid of its gunicorn master."""

    url: str
    pid: int

    def pids(self) -> list[int]:
        """The master and its worker processes (for CPU accounting)."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            children = []
        return [self.pid, *map(int, children)]


@contextmanager
def _serving(argv: list[str], env: dict[str, str], port: int) -> Iterator[Server]:
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=_STDERR,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {process.returncode} before serving")
        try:
            return requests.get(base + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, 30, f"{Path(argv[0]).name} on port {port}")
        yield Server(base + "/webhooks/hubspot", process.pid)
    finally:
        stop(process)


@contextmanager
def hubhook_web(redis_url: str, workers: int = WEB_WORKERS, **env_extra: str) -> Iterator[Server]:
    """`hubhook web` exactly as the Procfile runs it (plus ``env_extra``)."""
    port = free_port()
    env = environment(redis_url, PORT=str(port), **env_extra)
    argv = [str(BIN / "hubhook"), "web", "--port", str(port), "--workers", str(workers)]
    with _serving(argv, env, port) as server:
        yield server


@contextmanager
def bare_web(redis_url: str, workers: int = WEB_WORKERS) -> Iterator[Server]:
    """The baseline receiver (bench/bare_app.py) under the same gunicorn settings."""
    port = free_port()
    env = environment(redis_url, BARE_SECRET=SECRET, BARE_SIGNED_URL=SIGNED_URL)
    argv = [str(BIN / "gunicorn"), *gunicorn_flags(port, workers), "bench.bare_app:create_app()"]
    with _serving(argv, env, port) as server:
        yield server


@contextmanager
def hubhook_workers(count: int, env: dict[str, str]) -> Iterator[list[subprocess.Popen]]:
    """``count`` `hubhook worker` processes with the bench's handlers (bench/handlers.py)."""
    env = {**env, "HUBHOOK_HANDLERS": env.get("HUBHOOK_HANDLERS", "bench.handlers:router")}
    processes = [subprocess.Popen([str(BIN / "hubhook"), "worker", "--name", f"bench-{os.getpid()}-{i}"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=_STDERR, start_new_session=True)
                 for i in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            stop(process)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc), to show who was busy."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            pass
    return total
