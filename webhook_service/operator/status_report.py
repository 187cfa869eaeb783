"""What an operator asks first, read from Redis: for ``hubhook status``, ``/healthz`` and ``/metrics``.

Every function here reads RQ's and hubhook's keys as they are (no writes), and a key that does not
exist yet reads as zero or empty: a fresh Redis, a queue nobody used, a poller that never ran are
all valid states to report, not errors. Only an unreachable Redis raises (RedisError).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.utils import str_to_date

from webhook_service import keys
from webhook_service.config import Config
from webhook_service.telemetry import backlog

#: Dead letters are attributed to handlers from their job's meta, one pipeline for up to this many.
DEAD_LETTER_SAMPLE = 1000


@dataclass(frozen=True)
class QueueHead:
    """The cheap facts about the queue: one pipeline plus one HGET."""

    name: str
    queued: int
    pending_events: int
    oldest_age: float | None     # seconds since the job at the head of the queue was enqueued


@dataclass(frozen=True)
class QueueFacts:
    """Every registry of the queue (rq-dashboard shows the same numbers)."""

    head: QueueHead
    started: int
    scheduled: int
    deferred: int
    dead_letters: int


def queue_head(redis: Redis, queue: Queue) -> QueueHead:
    """Queued jobs (in RQ's queue and the portals' lanes), pending events and the age of the job at the
    head of RQ's queue."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.llen(queue.key)
        pipe.lindex(queue.key, 0)
        pipe.get(backlog.PENDING_KEY)
        pipe.lrange(keys.LANES, 0, -1)
        queued, oldest_id, waiting, ring = pipe.execute()
    if ring:  # jobs waiting in the portals' lanes (webhook_service.lanes) are queued too
        with redis.pipeline(transaction=False) as pipe:
            for portal in ring:
                pipe.llen(keys.lane(portal.decode() if isinstance(portal, bytes) else portal))
            queued += sum(pipe.execute())
    age = None
    if oldest_id:
        enqueued_at = redis.hget(Job.key_for(oldest_id.decode()), "enqueued_at")
        if enqueued_at:
            age = round(max(0.0, time.time() - str_to_date(enqueued_at).timestamp()), 3)
    return QueueHead(queue.name, int(queued), max(0, int(waiting or 0)), age)


def queue_facts(redis: Redis, queue: Queue) -> QueueFacts:
    """The head plus the started, scheduled, deferred and failed (dead-letter) registries."""
    head = queue_head(redis, queue)
    now = time.time()
    with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(queue.started_job_registry.key)
        pipe.zcard(queue.scheduled_job_registry.key)
        pipe.zcard(queue.deferred_job_registry.key)
        pipe.zcount(queue.failed_job_registry.key, now, "+inf")  # entries past their TTL are gone for RQ
        started, scheduled, deferred, failed = pipe.execute()
    return QueueFacts(head, int(started), int(scheduled), int(deferred), int(failed))


def dead_letters_by_handler(redis: Redis, queue: Queue, limit: int = DEAD_LETTER_SAMPLE) -> Counter:
    """Dead letters per handler name ("delivery" for whole deliveries), reading only each job's meta."""
    found = redis.zrangebyscore(queue.failed_job_registry.key, time.time(), "+inf", start=0, num=limit)
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in found]
    counts: Counter = Counter()
    if not ids:
        return counts
    with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(Job.key_for(job_id), "meta")
        metas = pipe.execute()
    for raw in metas:
        try:
            meta = queue.serializer.loads(raw) if raw else {}
        except Exception:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        # a job the worker refused (jobs.worker.allowlist) is not hubhook's: its meta must not name a handler
        counts["refused" if "refused" in meta else str(meta.get("handler", "delivery"))] += 1
    total = redis.zcount(queue.failed_job_registry.key, time.time(), "+inf")
    if total > len(ids):
        counts["(not inspected)"] += total - len(ids)
    return counts


def workers(redis: Redis, queue: Queue) -> list[dict]:
    """Live workers of this queue: name, state, current job, successes, failures."""
    rows = []
    for worker in Worker.all(connection=redis, queue=queue):
        job_id = worker.get_current_job_id()
        rows.append({"name": worker.name, "state": str(getattr(worker.state, "value", worker.state)),
                     "job": job_id, "ok": worker.successful_job_count, "failed": worker.failed_job_count})
    return sorted(rows, key=lambda r: r["name"])


def poll_rows(config: Config) -> list[dict] | None:
    """The poller's cursors (``jobs.poller.main.status_rows``), or None when this install has no poller."""
    try:
        status_rows = keys.load(keys.POLLER_STATUS)
    except (ImportError, AttributeError):
        return None
    return status_rows(config)


def journal_row(config: Config, redis: Redis) -> dict | None:
    """The Webhooks Journal reader's offset, lag and figures (``jobs.journal.reader.status``), or None
    when no reader ever ran (or this installation has none)."""
    try:
        journal_status = keys.load(keys.JOURNAL_STATUS)
    except (ImportError, AttributeError):
        return None
    return journal_status(config, redis)


def rate_budget(config: Config, redis: Redis) -> list[dict]:
    """Each scope (portal, or "app") that used the burst budget in its current window
    (``jobs.hubspot.rate_budget.status_rows``)."""
    return keys.load(keys.RATE_STATUS)(config, redis)
