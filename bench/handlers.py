"""Handlers the benchmark workers run (``HUBHOOK_HANDLERS=bench.handlers:router``), and a no-op job.

Why these: the benches measure hubhook, not user code, so the handlers do as little as possible.
``drain`` takes the contact changes the load generators send (the backlog of bench/ack_latency.py);
``stamp`` records, for bench/latency.py, how long after it was sent each deal change reached its
handler (the sender puts the send time in ``occurredAt``).
"""
from __future__ import annotations

import os
import time

from redis import Redis

from webhook_service import Router

LATENCY_KEY = "bench:latency-ms"
router = Router()
_redis: Redis | None = None


def noop() -> None:
    """The job bench/worker_overhead.py fills the queue with: framework cost only."""


@router.on("contact.propertyChange", name="drain")
def drain(event) -> None:
    """Takes the bulk load; enrichment (one batch read per delivery) still happens for it."""


@router.on("deal.creation", name="stamp", properties=["dealname"])
def stamp(event) -> None:
    """Append now - occurredAt (ms) of the change to a Redis list the latency bench reads."""
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ["REDIS_URL"])
    now_ms = time.time() * 1000
    _redis.rpush(LATENCY_KEY, *(f"{now_ms - c['occurredAt']:.1f}" for c in event.changes))
