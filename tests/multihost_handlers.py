"""Handlers for the multi-host tests and bench: 50 ms of work per object, and which host did it.

The handler runs in ``hubhook worker`` on hosts B and C (network namespaces, ``webhook_service.testing.netns``)
and writes to a ledger Redis (``LEDGER_REDIS_URL``) so the test sees, per webhook change, how often it was
handled and on which host (``HUBHOOK_HOST``, set per host by the harness). Polled changes are counted
apart: the pollers run too, and their events are not the sender's.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from functools import lru_cache

from redis import Redis

from webhook_service import Router

CALLS = "mh:calls"        # hash: "<objectId>:<eventId>" -> handler calls (webhook changes)
HOSTS = "mh:hosts:"       # set per host letter: the event keys it handled
POLLED = "mh:polled"      # counter: handler calls for polled changes
DONE = "mh:done"          # list of time.time() of each webhook object handled (drain rates)
#: Seconds of work per object: the issue's 50 ms (``MH_HANDLER_SLEEP`` overrides it).
SLEEP = float(os.environ.get("MH_HANDLER_SLEEP", "0.05"))

router = Router()


@lru_cache(maxsize=1)
def _ledger() -> Redis:
    return Redis.from_url(os.environ["LEDGER_REDIS_URL"], socket_timeout=5)


@router.on("contact.*")
def work(event) -> None:
    """Take 50 ms, then record the change's key and this host."""
    time.sleep(SLEEP)
    host = os.environ.get("HUBHOOK_HOST", "?")
    with _ledger().pipeline(transaction=False) as pipe:
        if event.source != "webhook":
            pipe.incr(POLLED)
        else:
            keys = [f"{change['objectId']}:{change.get('eventId')}" for change in event.changes]
            for key in keys:
                pipe.hincrby(CALLS, key, 1)
            pipe.sadd(HOSTS + host, *keys)
            pipe.rpush(DONE, time.time())
        pipe.execute()


class Ledger:
    """The test's reading of what the handlers did."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def calls(self) -> Counter:
        return Counter({k.decode(): int(v) for k, v in self.redis.hgetall(CALLS).items()})

    def handled(self) -> int:
        return self.redis.hlen(CALLS)

    def by_host(self, letter: str) -> set[str]:
        return {k.decode() for k in self.redis.smembers(HOSTS + letter)}

    def done_times(self) -> list[float]:
        return [float(t) for t in self.redis.lrange(DONE, 0, -1)]
