"""What the fake HubSpot does to a request before the CRM sees it: rate limits and injected faults,
plus the record of each call that tests count.

These are the behaviours hubhook's API client must survive: rolling-window and daily 429s, 5xx
bursts, slow answers. Tests script them with ``fail_next``/``hang_next`` and check the client's
reaction through ``calls``.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES

from webhook_service.testing.fake_hubspot.shapes import error_body, rate_limit_body

_CATEGORIES = {400: "VALIDATION_ERROR", 401: "INVALID_AUTHENTICATION", 403: "MISSING_SCOPES",
               404: "OBJECT_NOT_FOUND", 423: "LOCKED"}


@dataclass(frozen=True)
class Call:
    """One request the fake answered. Holds no secret: the bearer token only as a sha256 prefix."""

    method: str
    path: str
    query: dict[str, str]
    body: Any                   # parsed JSON, or None (form bodies such as OAuth's are never kept)
    status: int
    at: float                   # time.time() when the request arrived
    token_sha256: str | None    # first 12 hex digits of sha256(token)
    portal: int | None          # hub id the token belongs to, when the fake knows it


class RollingWindow:
    """Requests admitted in the last ``seconds``, the way HubSpot counts TEN_SECONDLY_ROLLING and the
    search secondly limit. ``limit=None`` counts (for the headers) without refusing."""

    def __init__(self, limit: int | None, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> bool:
        """Count one request now, unless the window is full (a refused request is not counted)."""
        with self._lock:
            now = time.monotonic()
            while self._times and self._times[0] <= now - self.seconds:
                self._times.popleft()
            if self.limit is not None and len(self._times) >= self.limit:
                return False
            self._times.append(now)
            return True

    def remaining(self, shown_max: int) -> int:
        """What ``X-HubSpot-RateLimit-Remaining`` says after the last admitted request."""
        with self._lock:
            return max(0, shown_max - len(self._times))


class RateLimits:
    """HubSpot's limits, per portal: search calls per second, every other call per rolling window
    (TEN_SECONDLY_ROLLING), and a private app's daily budget per account. Without ``burst`` nothing
    is refused by the window but headers still count.

    The headers depend on the token kind, as
    https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines describes: a
    private app (Free/Starter tier) sees 100 per 10 s plus ``X-HubSpot-RateLimit-Daily`` and
    ``-Daily-Remaining``; an OAuth app sees 110 per 10 s per installing account and no daily headers
    ("not included in the response to API requests authorized using OAuth").
    """

    SEARCH = ("SECONDLY", "secondly")
    BURST = ("TEN_SECONDLY_ROLLING", "ten_secondly_rolling")
    DAILY = ("DAILY", "daily")
    PRIVATE_APP = (100, 10.0)               # what the headers say by default, per token kind
    OAUTH_APP = (110, 10.0)
    PRIVATE_APP_DAILY = 250_000             # per account, Free and Starter tiers

    def __init__(self, search_per_second: int | None, burst: tuple[int, float] | None,
                 daily: int | None = PRIVATE_APP_DAILY) -> None:
        self._search, self._burst, self.daily = search_per_second, burst, daily
        self._windows: dict[tuple[bool, int | None], RollingWindow] = {}
        self._daily_used: dict[int | None, int] = {}
        self._lock = threading.Lock()

    def window(self, portal: int | None, search: bool) -> RollingWindow:
        """The window a call of ``portal`` counts in."""
        with self._lock:
            if (search, portal) not in self._windows:
                limit, seconds = (self._search, 1.0) if search else self._burst or (None, 10.0)
                self._windows[(search, portal)] = RollingWindow(limit, seconds)
            return self._windows[(search, portal)]

    def take_daily(self, portal: int | None) -> bool:
        """Count one private-app request against the account's day, unless the day is spent."""
        with self._lock:
            used = self._daily_used.get(portal, 0)
            if self.daily is not None and used >= self.daily:
                return False
            self._daily_used[portal] = used + 1
            return True

    def spend_daily(self, portal: int | None, requests: int) -> None:
        """Count ``requests`` made by other apps of the same account (they share its daily limit)."""
        with self._lock:
            self._daily_used[portal] = self._daily_used.get(portal, 0) + requests

    def headers(self, window: RollingWindow, *, oauth: bool, portal: int | None) -> dict[str, str]:
        """The ``X-HubSpot-RateLimit-*`` headers of a non-search answer for this token kind."""
        shown, seconds = self._burst or (self.OAUTH_APP if oauth else self.PRIVATE_APP)
        out = {"X-HubSpot-RateLimit-Max": str(shown),
               "X-HubSpot-RateLimit-Remaining": str(window.remaining(shown)),
               "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(seconds * 1000))}
        if not oauth and self.daily is not None:
            with self._lock:
                left = max(0, self.daily - self._daily_used.get(portal, 0))
            out.update({"X-HubSpot-RateLimit-Daily": str(self.daily),
                        "X-HubSpot-RateLimit-Daily-Remaining": str(left)})
        return out


@dataclass
class _Rule:
    kind: str                   # "fail" or "hang"
    left: int
    path_contains: str | None
    status: int = 502
    body: dict | None = None
    headers: dict | None = None
    seconds: float = 0.0


class Faults:
    """Scripted failures, consumed in the order they were added by the requests they match."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()

    def add(self, kind: str, n: int, path_contains: str | None, **details: Any) -> None:
        """Queue ``n`` occurrences of a fault for requests whose path contains ``path_contains``."""
        if n > 0:
            with self._lock:
                self._rules.append(_Rule(kind, n, path_contains, **details))

    def take(self, kind: str, path: str) -> _Rule | None:
        """The first rule of ``kind`` matching ``path``, used up by one."""
        with self._lock:
            for rule in self._rules:
                if rule.kind == kind and (rule.path_contains is None or rule.path_contains in path):
                    rule.left -= 1
                    if rule.left == 0:
                        self._rules.remove(rule)
                    return rule
        return None


def fault_body(status: int) -> dict[str, Any]:
    """A HubSpot-shaped body for an injected status when the test gave none."""
    if status == 429:
        return rate_limit_body("TEN_SECONDLY_ROLLING", "ten_secondly_rolling")
    category = _CATEGORIES.get(status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")
    return error_body(HTTP_STATUS_CODES.get(status, "Error"), category)
