"""One HubSpot rate budget shared by every process, through Redis.

Built on ``limits``' moving window (an exact rolling window kept in Redis, measured in
research/LIBRARIES.md section 5 to never over-admit across processes); this module only adds the
blocking ``acquire`` and the budgets HubSpot imposes: the 10-second burst per app (per portal for OAuth
apps), 5 searches per second per account, and a cap on the share polling may take so real-time webhook
work always finds room.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import Redis

from webhook_service.errors import RateLimited


@dataclass(frozen=True)
class Budget:
    """How many requests per window HubSpot allows one app/portal."""

    burst: int = 100
    burst_window: int = 10
    search_per_second: int = 5
    poll_share: float = 0.5


class RateGovernor:
    """Blocks each caller until HubSpot's budget has room; shared across processes and machines."""

    def __init__(self, redis: Redis, budget: Budget = Budget(), *, key_prefix: str = "hubhook:rate") -> None:
        storage = RedisStorage("redis://", connection_pool=redis.connection_pool, key_prefix=key_prefix)
        self._limiter = MovingWindowRateLimiter(storage)
        self.budget = budget
        self._burst = RateLimitItemPerSecond(budget.burst, budget.burst_window)
        self._search = RateLimitItemPerSecond(budget.search_per_second, 1)
        self._poll = RateLimitItemPerSecond(max(1, int(budget.burst * budget.poll_share)), budget.burst_window)

    def acquire(self, scope: str = "app", *, search: bool = False, priority: str = "webhook",
                max_wait: float = 60.0) -> float:
        """Take one request from the budget of ``scope`` (a portal id or "app"); return seconds waited.

        Raises RateLimited when no room appears within ``max_wait``, so the job is rescheduled
        instead of holding a worker asleep.
        """
        items = [self._search] if search else [self._burst]
        if priority == "poll" and not search:
            items.insert(0, self._poll)
        started = time.monotonic()
        for item in items:
            self._take(item, scope, started + max_wait)
        return time.monotonic() - started

    def _take(self, item: RateLimitItemPerSecond, scope: str, deadline: float) -> None:
        while not self._limiter.hit(item, scope):
            reset_at, _remaining = self._limiter.get_window_stats(item, scope)
            wait = max(0.005, reset_at - time.time()) + random.uniform(0, 0.02)
            if time.monotonic() + wait > deadline:
                raise RateLimited(f"local rate budget {item} for {scope} stays full", retry_after=wait,
                                  policy="LOCAL_BUDGET")
            time.sleep(min(wait, 1.0))

    def remaining(self, scope: str = "app") -> int:
        """Requests left in the current burst window for ``scope`` (for status output)."""
        return self._limiter.get_window_stats(self._burst, scope)[1]
