"""Scripted HubSpot API weather for the fault scenarios, and a watch on how long jobs run.

``ApiWeather`` sits in front of the fake HubSpot's own gate (auth, rate limits): first a storm in
which every call gets HubSpot's 429 ``TEN_SECONDLY_ROLLING`` answer with its rate-limit headers,
then a steady drizzle where every ``error_every``-th call is a 502 and every ``hang_every``-th call
hangs for ``hang_seconds`` before being answered. Counting calls instead of drawing random numbers
makes "5% 502s and 1% hangs" exact and the test repeatable. Calls still go through the fake's own
rolling-window limit afterwards, so any 429 after the storm is one hubhook earned itself.

``JobWatch`` samples RQ's started-job registry and remembers how long each execution stayed in it:
the longest stay is how long a worker was busy with one job, which must not exceed the job timeout.
"""
from __future__ import annotations

import itertools
import threading
import time

from flask import jsonify, request
from redis import Redis

from webhook_service.testing import FakeHubSpot
from webhook_service.testing.fake_hubspot.shapes import rate_limit_body


class ApiWeather:
    """Storm, then drizzle, for every CRM call (OAuth untouched)."""

    def __init__(self, *, storm_seconds: float, error_every: int = 20, hang_every: int = 100,
                 hang_seconds: float = 30.0) -> None:
        self.storm_seconds, self.error_every, self.hang_every = storm_seconds, error_every, hang_every
        self.hang_seconds = hang_seconds
        self.storm_started: float | None = None     # time.time(), comparable with the fake's Call.at
        self.storm_ended: float | None = None
        self.counts = {"429": 0, "502": 0, "hang": 0}
        self._calls = itertools.count(1)
        self._release = threading.Event()
        self._lock = threading.Lock()

    def install(self, hubspot: FakeHubSpot) -> None:
        """Put the weather before the fake's gate; must happen before the fake serves its first request."""
        hubspot.app.before_request_funcs.setdefault(None, []).insert(0, self._gate)

    def start_storm(self) -> None:
        self.storm_started = time.time()
        self.storm_ended = self.storm_started + self.storm_seconds

    def release(self) -> None:
        """End every hang now (teardown)."""
        self._release.set()

    def _gate(self):
        if self.storm_started is None or request.path.startswith("/oauth/"):
            return None
        if time.time() < self.storm_ended:
            with self._lock:
                self.counts["429"] += 1
            headers = {"X-HubSpot-RateLimit-Max": "110", "X-HubSpot-RateLimit-Remaining": "0",
                       "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
            return jsonify(rate_limit_body("TEN_SECONDLY_ROLLING", "ten_secondly_rolling")), 429, headers
        n = next(self._calls)
        if n % self.error_every == 7:
            with self._lock:
                self.counts["502"] += 1
            return jsonify({"status": "error", "message": "Bad Gateway", "category": "INTERNAL_ERROR"}), 502
        if n % self.hang_every == 13:
            with self._lock:
                self.counts["hang"] += 1
            self._release.wait(self.hang_seconds)
        return None


class JobWatch:
    """How long each job execution stays in RQ's started registry, sampled every 0.2 s."""

    def __init__(self, client: Redis, registry_key: str = "rq:wip:hubhook") -> None:
        self.client, self.key = client, registry_key
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            for member in self.client.zrange(self.key, 0, -1):
                self.first.setdefault(member, now)
                self.last[member] = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def longest(self) -> float:
        """The longest a single execution was seen running, in seconds."""
        return max((self.last[m] - self.first[m] for m in self.first), default=0.0)
