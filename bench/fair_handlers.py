"""Handlers for bench/fairness.py (``HUBHOOK_HANDLERS=bench.fair_handlers:router``): every contact
creation takes 20 ms of work; portal B's record how long after it was sent (``occurredAt``) it ran,
portal A's count, with the time of the last one."""
from __future__ import annotations

import os
import time

from redis import Redis

from webhook_service import Router

B_LATENCY_KEY = "bench:fair:b-latency-ms"
A_DONE_KEY = "bench:fair:a-done"
A_LAST_KEY = "bench:fair:a-last"
PORTAL_B = 2002
router = Router()
_redis: list[Redis] = []


@router.on("contact.creation", name="work")
def work(event) -> None:
    if not _redis:
        _redis.append(Redis.from_url(os.environ["REDIS_URL"]))
    time.sleep(float(os.environ.get("BENCH_HANDLER_SECONDS", "0.02")))
    now = time.time()
    if event.portal_id == PORTAL_B:
        _redis[0].rpush(B_LATENCY_KEY, now * 1000 - event.changes[0]["occurredAt"])
    else:
        with _redis[0].pipeline(transaction=False) as pipe:
            pipe.incr(A_DONE_KEY)
            pipe.set(A_LAST_KEY, now)
            pipe.execute()
