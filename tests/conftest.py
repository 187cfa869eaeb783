"""Shared fixtures: a real redis-server on a free port, the fake HubSpot over HTTP, a Config.

No in-memory Redis stand-in and no mocks of hubhook: the only stand-in is HubSpot itself.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from webhook_service.config import Config
from webhook_service.connection import connect
from webhook_service.devstack import PostgresProcess, RedisProcess, free_port  # noqa: F401 (free_port: tests)
from webhook_service.errors import ConfigError
from webhook_service.testing import FakeHubSpot

SECRET = "test-client-secret"
TOKEN = "test-access-token"
ROOT = Path(__file__).resolve().parent.parent


#: HUBHOOK_TEST_REDIS=cluster runs the tests on a Redis Cluster of three masters that the session starts
#: (the Makefile's ``test`` does so for the pipeline tests, with RQ_KEY_PREFIX='{hubhook}:rq').
ON_CLUSTER = os.environ.get("HUBHOOK_TEST_REDIS") == "cluster"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisProcess]:
    if ON_CLUSTER:
        from webhook_service.testing.redis_topologies import RedisClusterGroup

        with RedisClusterGroup(tmp_path_factory.mktemp("cluster")) as cluster:
            yield cluster  # type: ignore[misc]  # what the tests use of a server: .url
        return
    try:
        server = RedisProcess(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    except ConfigError as exc:
        pytest.exit(str(exc), 2)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresProcess]:
    """A PostgreSQL cluster of the suite's own (initdb in a temporary directory, a free port, fsync off)."""
    try:
        server = PostgresProcess().start()
    except ConfigError as exc:
        pytest.exit(str(exc), 2)
    yield server
    server.remove()


@pytest.fixture
def mirror_config(config: Config, postgres_server: PostgresProcess, request) -> Iterator[Config]:
    """``config`` with the mirror on, in a schema of this test's own (so tests never see each other's rows)."""
    import re as _re

    from jobs.mirror.handler import close_all

    schema = "t_" + _re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50]
    import psycopg
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    yield dataclasses.replace(config, mirror_url=postgres_server.url, mirror_schema=schema)
    close_all()


@pytest.fixture
def redis(redis_server: RedisProcess) -> Redis:
    client = connect(redis_server.url)
    client.flushall()
    return client


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    with FakeHubSpot(tokens={TOKEN}) as fake:
        yield fake


#: HUBHOOK_FAST_PATHS=0 runs the suite on RQ's and CPython's stock paths (the Makefile's ``test`` does
#: both); the fixtures' Config carries it, and the spawned processes inherit it with the environment.
FAST_PATHS = Config.from_env({k: v for k, v in os.environ.items() if k == "HUBHOOK_FAST_PATHS"}).fast_paths
fast_paths_only = pytest.mark.skipif(not FAST_PATHS, reason="a property of hubhook's fast paths "
                                     "(webhook_service.private_apis); HUBHOOK_FAST_PATHS=0 runs RQ's stock ones")

#: /metrics answers only this bearer (HUBHOOK_METRICS_TOKEN).
METRICS_TOKEN = "suite-metrics-token-0123456789"
METRICS_BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def config(redis_server: RedisProcess, hubspot: FakeHubSpot, redis: Redis) -> Config:
    return Config(redis_url=redis_server.url, client_secrets=(SECRET,), access_token=TOKEN,
                  api_base_url=hubspot.url, handler_retries=(0, 0), webhook_url="https://hooks.example.com/webhooks/hubspot",
                  metrics_token=METRICS_TOKEN, fast_paths=FAST_PATHS)


@pytest.fixture
def env(config: Config) -> dict[str, str]:
    """The environment a user would set for the processes, pointing at our Redis and fake HubSpot."""
    return {**os.environ, "REDIS_URL": config.redis_url, "HUBSPOT_CLIENT_SECRET": SECRET,
            "HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_API_BASE_URL": config.api_base_url,
            "PYTHONPATH": str(ROOT), "HUBHOOK_HANDLER_RETRIES": "0,0"}


def queued_jobs(redis: Redis, queue) -> list:
    """The jobs waiting to run, RQ's queue first, then the portals' lanes (``webhook_service.lanes``)."""
    from rq.job import Job

    from webhook_service import lanes

    return [job for job in Job.fetch_many(lanes.waiting_ids(redis, queue), connection=redis,
                                          serializer=queue.serializer) if job is not None]


def drain(config: Config, router, *, rounds: int = 20) -> None:
    """Run a real RQ worker (in this process) until the queue and its scheduled retries are empty."""
    from rq.registry import ScheduledJobRegistry

    from jobs.worker.worker import build_worker
    from webhook_service import lanes

    for _ in range(rounds):
        worker = build_worker(config, router)
        lanes.refill(worker.connection, worker.queues[0])  # jobs waiting in the portals' lanes, in turn
        scheduled = ScheduledJobRegistry(queue=worker.queues[0])
        if not worker.queues[0].count and not scheduled.count:
            return
        if scheduled.count and not worker.queues[0].count:
            for job_id in scheduled.get_job_ids():  # due now or soon: make it due immediately
                worker.queues[0].enqueue_job(worker.queues[0].fetch_job(job_id))
                scheduled.remove(job_id)
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    raise AssertionError("queue did not drain")
