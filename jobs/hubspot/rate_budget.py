"""One HubSpot rate budget shared by every process, through Redis.

Built on ``limits``' moving window (an exact rolling window kept in Redis: six processes sharing a
5-per-second limit were never over-admitted in a trial); this module only adds what HubSpot's limits
need on top (https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines):

- budgets per *scope*: "app" for a private-app token or service key (the burst limit is per app),
  the portal id for OAuth tokens (110 per 10 s per installing account);
- the burst window, the 5-per-second search window, and a cap on the share polling may take so
  real-time webhook work always finds room;
- spreading: at most a second's share of the burst window (11 of 110 per 10 s) in any one second.
  A window used in one burst is refilled in one burst, requests milliseconds apart, and then tens of
  milliseconds of jitter on the way to HubSpot are enough to land a few of them in the old window
  (measured: 429s at 6 workers); spread out, the headroom absorbs half a second of jitter;
- learning from ``X-HubSpot-RateLimit-Max/-Interval-Milliseconds`` (HubSpot's numbers win over
  ``HUBSPOT_BURST_LIMIT``, less a little headroom so request timing jitter never tips a window over),
  ``-Remaining`` (when HubSpot counts more than we did, someone else shares the budget: the
  difference is taken from ours) and ``-Daily-Remaining``;
- pauses: a DAILY 429 (or a daily remaining of 0) pauses the scope's work for an hour at a time,
  logged once by whichever process sets the pause; a 429 with ``Retry-After`` pauses for that long.

``acquire`` sleeps only for short waits; a pause or a wait longer than ``max_wait`` raises
RateLimited so the job is rescheduled instead of holding a worker asleep.
"""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import Redis

from webhook_service import keys
from webhook_service.config import Config
from webhook_service.errors import RateLimited

log = logging.getLogger("hubhook.api")
HEADROOM = 0.02            # of HubSpot's Max, kept unused: a request arriving a few ms early is not a 429
JITTER = 0.5               # ... and at least this many seconds' worth, for windows refilled in bursts
DAILY_PROBE = 3600.0       # the daily limit resets at midnight in the account's time zone: probe hourly
LEARNED_TTL = 3600         # a learned budget is forgotten an hour after HubSpot last said it
#: Seconds to wait after a 429 that names its policyName and says nothing more (no Retry-After): the
#: 10-second burst window, the per-second search limit, the daily limit (probed hourly).
POLICY_WAIT = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0, "DAILY": DAILY_PROBE}


@dataclass(frozen=True)
class Budget:
    """How many requests per window HubSpot allows one app/portal, until its headers say otherwise.
    The defaults are Config's (HUBSPOT_BURST_LIMIT, HUBSPOT_SEARCH_LIMIT, HUBHOOK_POLL_SHARE)."""

    burst: int = Config.burst_limit
    burst_window: int = 10     # seconds: HubSpot's burst limits are per 10 s
    search_per_second: int = Config.search_limit
    poll_share: float = Config.poll_share


class _Window(RateLimitItemPerSecond):
    """A moving window whose Redis key does not include its size, so a budget learned from HubSpot's
    headers keeps counting the requests already made under the configured one."""

    def key_for(self, *identifiers: bytes | str | float) -> str:
        return "/".join([self.namespace, *map(str, identifiers)])


class RateGovernor:
    """Blocks each caller until HubSpot's budget has room; shared across processes and machines."""

    def __init__(self, redis: Redis, budget: Budget = Budget(), *, key_prefix: str = keys.RATE) -> None:
        storage = RedisStorage("redis://", connection_pool=redis.connection_pool, key_prefix=key_prefix)
        self._limiter = MovingWindowRateLimiter(storage)
        self._redis, self._prefix, self.budget = redis, key_prefix, budget
        self._search = _Window(budget.search_per_second, 1)
        self._told: dict[str, tuple[str, float]] = {}   # scope -> (learned value, when we last wrote it)

    # -- taking a request ------------------------------------------------------------------------
    def acquire(self, scope: str = "app", *, search: bool = False, priority: str = "webhook",
                max_wait: float = 10.0) -> float:
        """Take one request from the budget of ``scope``; return seconds waited.

        Raises RateLimited when the scope is paused for longer than ``max_wait`` (always for DAILY)
        or no room appears within ``max_wait``.
        """
        started = time.monotonic()
        deadline = started + max_wait
        with self._redis.pipeline(transaction=False) as pipe:
            for name in self._pause_keys(scope, search):
                pipe.pttl(name)
                pipe.get(name)
            pipe.get(self._learned_key(scope))
            *pauses, learned = pipe.execute()
        for left_ms, policy in zip(pauses[::2], pauses[1::2]):
            if left_ms and left_ms > 0:
                policy = (policy or b"").decode() or None
                wait = left_ms / 1000
                if policy == "DAILY" or time.monotonic() + wait > deadline:
                    raise RateLimited(f"HubSpot budget of {scope} is paused ({policy or 'Retry-After'})",
                                      retry_after=wait, policy=policy)
                time.sleep(wait)
        if search:
            self._take(self._search, ("search", scope), scope, deadline)
        else:
            burst = self._burst(learned)
            if burst.multiples > 1:  # spread: at most a second's share of the window in any second
                spread = _Window(math.ceil(burst.amount / burst.multiples), 1)
                self._take(spread, ("spread", scope), scope, deadline)
            if priority == "poll":
                share = _Window(max(1, int(burst.amount * self.budget.poll_share)), burst.multiples)
                self._take(share, ("poll", scope), scope, deadline)
            self._take(burst, ("burst", scope), scope, deadline)  # last: stamped just before the request leaves
        return time.monotonic() - started

    def _take(self, item: _Window, ids: tuple[str, str], scope: str, deadline: float) -> None:
        while not self._limiter.hit(item, *ids):
            reset_at, _remaining = self._limiter.get_window_stats(item, *ids)
            wait = max(0.005, reset_at - time.time()) + random.uniform(0, 0.02)
            if time.monotonic() + wait > deadline:
                raise RateLimited(f"local rate budget {item} for {scope} stays full", retry_after=wait,
                                  policy="LOCAL_BUDGET")
            time.sleep(min(wait, 1.0))

    def _burst(self, learned: bytes | str | None) -> _Window:
        """The burst window in force: HubSpot's last word (less headroom), else the configured one."""
        if learned:
            text = learned.decode() if isinstance(learned, bytes) else learned
            most, _, interval_ms = text.partition("/")
            if most.isdigit() and interval_ms.isdigit() and int(most) > 0:
                most_i, seconds = int(most), max(1, math.ceil(int(interval_ms) / 1000))
                return _Window(max(1, most_i - headroom(most_i, seconds)), seconds)
        return _Window(self.budget.burst, self.budget.burst_window)

    # -- what HubSpot said -----------------------------------------------------------------------
    def observe(self, scope: str, headers: Mapping[str, str], *, search: bool = False) -> None:
        """Learn from an answer's ``X-HubSpot-RateLimit-*`` headers (search answers carry none)."""
        most = _int(headers.get("X-HubSpot-RateLimit-Max"))
        left = _int(headers.get("X-HubSpot-RateLimit-Remaining"))
        interval = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        if search or most is None or most <= 0:
            return
        value = f"{most}/{interval or self.budget.burst_window * 1000}"
        told, at = self._told.get(scope, ("", 0.0))
        if told != value or time.monotonic() - at > 60:
            self._redis.set(self._learned_key(scope), value, ex=LEARNED_TTL)
            self._told[scope] = (value, time.monotonic())
        if left is not None and left < most // 2:  # only near the limit is a difference worth a look
            self._sync(scope, left, most, value)
        if headers.get("X-HubSpot-RateLimit-Daily-Remaining", "").strip() == "0":
            self.pause(scope, DAILY_PROBE, "DAILY", "its daily remaining reached 0")

    def _sync(self, scope: str, hubspot_left: int, most: int, learned: str) -> None:
        """When HubSpot counts clearly more requests than we did (another user of the same app or
        portal), take the difference from our budget too; timing jitter (within the headroom) is not."""
        item = self._burst(learned)
        _reset, ours_left = self._limiter.get_window_stats(item, "burst", scope)
        spare = headroom(most, item.multiples)
        excess = ours_left - max(0, hubspot_left - spare)
        if excess > spare:
            self._limiter.hit(item, "burst", scope, cost=excess)

    def on_429(self, scope: str, policy: str | None, retry_after: float | None, *,
               search: bool = False) -> float:
        """Record a 429 so every process backs off; return how long the refused work should wait."""
        if policy == "DAILY":
            return self.pause(scope, retry_after or DAILY_PROBE, "DAILY", "HubSpot answered 429 DAILY")
        if retry_after is not None:
            return self.pause(scope, retry_after, policy or "RETRY_AFTER", search=search)
        if search:
            item, ids = self._search, ("search", scope)
        else:
            item, ids = self._burst(self._redis.get(self._learned_key(scope))), ("burst", scope)
        reset_at, left = self._limiter.get_window_stats(item, *ids)
        if left > 0:  # HubSpot says the window is full: so is ours, for every process
            self._limiter.hit(item, *ids, cost=left)
            reset_at, _ = self._limiter.get_window_stats(item, *ids)
        if policy == "SECONDLY" or search:
            return POLICY_WAIT["SECONDLY"]
        return min(float(item.get_expiry()), max(1.0, reset_at - time.time()))

    def pause(self, scope: str, seconds: float, policy: str, why: str = "", *, search: bool = False) -> float:
        """Pause ``scope`` for ``seconds`` (one key with a TTL); log once, by the process that set it.
        Returns the seconds left on the pause in force."""
        name = self._pause_key(scope, search)
        if self._redis.set(name, policy, px=max(1, int(seconds * 1000)), nx=True):
            if policy == "DAILY":
                log.warning("HubSpot daily limit reached for %s (%s): its API work is paused for %.0f min, then "
                            "probed again; deliveries keep being accepted and wait in the queue",
                            _describe(scope), why, seconds / 60)
            return seconds
        left = self._redis.pttl(name)
        return max(left, 1) / 1000 if left and left > 0 else seconds

    # -- status ----------------------------------------------------------------------------------
    def remaining(self, scope: str = "app") -> int:
        """Requests left in the current burst window for ``scope`` (for status output)."""
        item = self._burst(self._redis.get(self._learned_key(scope)))
        return int(self._limiter.get_window_stats(item, "burst", scope)[1])

    def limit(self, scope: str = "app") -> int:
        """Requests per burst window in force for ``scope``: learned from HubSpot, else configured."""
        return self._burst(self._redis.get(self._learned_key(scope))).amount

    def paused_for(self, scope: str = "app") -> float:
        """Seconds ``scope`` stays paused (0 when it is not)."""
        left = self._redis.pttl(self._pause_key(scope))
        return left / 1000 if left and left > 0 else 0.0

    def _pause_keys(self, scope: str, search: bool) -> list[str]:
        return [self._pause_key(scope)] + ([self._pause_key(scope, True)] if search else [])

    def _learned_key(self, scope: str) -> str:
        return keys.rate_learned(scope, self._prefix)

    def _pause_key(self, scope: str, search: bool = False) -> str:
        return keys.rate_pause(scope, search=search, prefix=self._prefix)


def status_rows(config: Config, redis: Redis) -> list[dict]:
    """Each scope (portal, or "app") that used the burst budget in its current window, for ``hubhook status``
    (``webhook_service.operator.status_report`` calls it by its dotted path, ``keys.RATE_STATUS``)."""
    governor = RateGovernor(redis, Budget(burst=config.burst_limit, search_per_second=config.search_limit))
    prefix = keys.RATE_BURST_WINDOWS
    rows = []
    for name in sorted({k.decode() for k in redis.scan_iter(match=prefix + "*", count=1000)}):
        scope = name[len(prefix):]
        remaining, limit = governor.remaining(scope), governor.limit(scope)
        rows.append({"scope": scope, "used": max(0, limit - remaining), "limit": limit,
                     "paused_for": governor.paused_for(scope)})
    return rows


def headroom(most: int, seconds: int) -> int:
    """Requests of HubSpot's window left unused: 2%, and at least half a second's worth.

    When a full window refills, requests leave close together; one that reaches HubSpot a little
    sooner than the request it replaces would otherwise be counted in the old window.
    (110 per 10 s: 6 spare; 20 per second: 10.)"""
    return max(1, math.ceil(most * HEADROOM), math.ceil(most / seconds * JITTER))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _describe(scope: str) -> str:
    return "the app" if scope == "app" else f"portal {scope}"
