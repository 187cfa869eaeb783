"""The resilience harness: hubhook's real processes on loopback around a Redis the tests may kill.

Two Redis servers per test: the *stack* Redis (AOF on, ``appendfsync everysec`` as docs/deployment.md asks,
fresh directory per test; this is the one scenarios kill) and the session's plain Redis from
``tests/conftest.py``, which holds only the handlers' ledger, the outside world's record of what ran.
The fake HubSpot serves the CRM API from this process. ``stack`` starts ``hubhook web`` and workers
and stops every one of them at teardown, whatever the test did; when a test fails, the tail of each
process's log is printed with the failure.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from jobs.delivery.batching import claimed_count
from webhook_service.devstack import RedisProcess, free_port
from webhook_service.testing import FakeHubSpot

from ..conftest import ROOT, SECRET, TOKEN
from .ledger import Ledger
from .procs import Proc, Web, WorkerPool


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def stack_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """hubhook's Redis, with persistence as docs/deployment.md prescribes."""
    (tmp_path / "redis").mkdir()
    server = RedisProcess(tmp_path / "redis", appendonly=True, fsync="everysec").start()
    yield server
    server.kill()


@pytest.fixture
def stack_client(stack_redis: RedisProcess) -> Redis:
    return Redis.from_url(stack_redis.url)


@pytest.fixture
def ledger(redis: Redis) -> Ledger:
    """The ledger, in the session Redis (flushed for each test by the ``redis`` fixture)."""
    return Ledger(redis)


@pytest.fixture
def contacts(hubspot: FakeHubSpot):
    """Create contacts 1..n in the fake HubSpot so every event can be enriched."""
    def add(count: int, first_id: int = 1) -> None:
        for object_id in range(first_id, first_id + count):
            hubspot.add("contacts", object_id, {"email": f"c{object_id}@example.com"})
    return add


@pytest.fixture
def stack_env(stack_redis: RedisProcess, redis_server: RedisProcess, hubspot: FakeHubSpot) -> dict[str, str]:
    port = free_port()
    return {**os.environ, "REDIS_URL": stack_redis.url, "LEDGER_REDIS_URL": redis_server.url,
            "HUBSPOT_CLIENT_SECRET": SECRET, "HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_API_BASE_URL": hubspot.url,
            "PYTHONPATH": str(ROOT), "HUBHOOK_HANDLERS": "tests.resilience.ledger:router",
            "PORT": str(port), "WEB_CONCURRENCY": "2", "HUBHOOK_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/hubspot",
            "HUBHOOK_JOB_TIMEOUT": "10", "HUBSPOT_BURST_LIMIT": "100000", "HUBHOOK_HANDLER_RETRIES": "1,1,1",
            "HUBHOOK_LOG_LEVEL": "INFO"}


class Stack:
    """Starts hubhook's processes for one test and remembers them all for teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.started: list = []

    def web(self, **env: str) -> Web:
        web = Web({**self.env, **env}, self.log_dir / f"web-{len(self.started)}.log")
        self.started.append(web)
        return web

    def workers(self, size: int, *args: str, **env: str) -> WorkerPool:
        pool = WorkerPool(size, {**self.env, **env}, self.log_dir, args=args)
        self.started.append(pool)
        return pool

    def daemon(self, *args: str, **env: str) -> Proc:
        """Start a long-running command (``poll``), stopped at teardown."""
        proc = Proc(list(args), {**self.env, **env}, self.log_dir / f"{args[0]}-{len(self.started)}.log")
        self.started.append(proc)
        return proc

    def once(self, *args: str, timeout: float = 60.0, **env: str) -> int:
        """Run one command to completion (``worker --burst``); return its exit status."""
        proc = Proc(list(args), {**self.env, **env}, self.log_dir / f"{args[0]}-once-{len(self.started)}.log")
        self.started.append(proc)
        return proc.popen.wait(timeout=timeout)

    def stop(self) -> None:
        for thing in reversed(self.started):
            thing.stop()


@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path: Path, request) -> Iterator[Stack]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    running = Stack(stack_env, log_dir)
    try:
        yield running
    finally:
        running.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for log in sorted(log_dir.iterdir()):
                tail = log.read_text(errors="replace").splitlines()[-25:]
                print(f"---- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))


def pending_work(client: Redis, queue_name: str = "hubhook") -> dict[str, int]:
    """What RQ still holds (and deliveries a running batch claimed from it), read without running RQ's
    cleanup, which would do the workers' recovery work for them."""
    queue = Queue(queue_name, connection=client)
    return {"queued": client.llen(queue.key), "claimed": claimed_count(client),
            "intermediate": client.llen(queue.intermediate_queue_key),
            "started": client.zcard(queue.started_job_registry.key),
            "scheduled": client.zcard(queue.scheduled_job_registry.key),
            "failed": client.zcard(queue.failed_job_registry.key)}


def quiescent(client: Redis) -> bool:
    return not any(pending_work(client).values())

