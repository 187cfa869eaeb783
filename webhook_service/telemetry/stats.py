"""Worker-side figures (handler runs, API calls, rate-budget waits) kept in Redis for ``/metrics``.

Workers and pollers are not the process Prometheus scrapes, and a per-job file (prometheus_client's
multiprocess mode writes one per process id) would grow without bound. So each process adds its
increments to an in-memory buffer and writes them with HINCRBY into one Redis hash: the worker after
every job, in the same pipeline as the object histories, other processes every few seconds
(``start_autoflush``). The web app's collector reads the hash with one HGETALL.

Field names are ``json([name, {labels}])``, readable in redis-cli; histograms store one
non-cumulative count per bucket plus ``<name>_sum`` and ``<name>_count``.
"""
from __future__ import annotations

import atexit
import json
import logging
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from webhook_service import keys

log = logging.getLogger("hubhook.stats")
STATS_KEY = keys.STATS
#: Seconds; handler latency and the like. ``+Inf`` is implied.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_VERSION = re.compile(r"^(\d{4}-\d{2}|v\d+)$")


def _field(name: str, labels: dict[str, str]) -> str:
    return json.dumps([name, dict(sorted(labels.items()))], separators=(",", ":"))


class Buffer:
    """Increments not yet written to Redis; thread-safe, bounded by the number of label sets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = defaultdict(float)
        self._floats: set[str] = set()

    def add(self, name: str, amount: float = 1, **labels: Any) -> None:
        name_field = _field(name, {k: str(v) for k, v in labels.items()})
        with self._lock:
            self._values[name_field] += amount
            if isinstance(amount, float):
                self._floats.add(name_field)

    def take(self) -> tuple[dict[str, float], set[str]]:
        with self._lock:
            values, floats = self._values, self._floats
            self._values, self._floats = defaultdict(float), set()
        return values, floats

    def put_back(self, values: dict[str, float], floats: set[str]) -> None:
        with self._lock:
            for name_field, amount in values.items():
                self._values[name_field] += amount
            self._floats |= floats


_buffer = Buffer()


def count(name: str, amount: float = 1, **labels: Any) -> None:
    """Add to a counter (``count("handler_runs", handler="x")``); written at the next flush."""
    _buffer.add(name, amount, **labels)


def observe(name: str, seconds: float, **labels: Any) -> None:
    """Add one observation to a histogram with the standard BUCKETS."""
    bucket = next((b for b in BUCKETS if seconds <= b), "+Inf")
    _buffer.add(f"{name}_bucket", 1, le=bucket, **labels)
    _buffer.add(f"{name}_sum", float(seconds), **labels)
    _buffer.add(f"{name}_count", 1, **labels)


def write(pipe: Pipeline) -> tuple[dict[str, float], set[str]]:
    """Queue the buffered increments on ``pipe``; return them so a failed execute can put them back."""
    values, floats = _buffer.take()
    for name_field, amount in values.items():
        if name_field in floats:
            pipe.hincrbyfloat(STATS_KEY, name_field, amount)
        else:
            pipe.hincrby(STATS_KEY, name_field, int(amount))
    return values, floats


def put_back(taken: tuple[dict[str, float], set[str]]) -> None:
    _buffer.put_back(*taken)


def flush(redis: Redis) -> None:
    """Write the buffer now (one round trip); on a Redis error keep it for the next flush."""
    with redis.pipeline(transaction=False) as pipe:
        taken = write(pipe)
        if not taken[0]:
            return
        try:
            pipe.execute()
        except RedisError as exc:
            put_back(taken)
            log.warning("could not write figures to Redis (%s); will retry", type(exc).__name__)


def start_autoflush(redis: Redis, every: float = 5.0) -> threading.Event:
    """Flush from a daemon thread every ``every`` seconds and at exit (poller, long-lived CLIs)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            flush(redis)

    def last_flush() -> None:
        stop.set()
        flush(redis)

    threading.Thread(target=loop, name="hubhook-stats", daemon=True).start()
    atexit.register(last_flush)
    return stop


# -- what is counted, by whom -------------------------------------------------------------------
def endpoint_label(method: str, url: str) -> str:
    """A bounded label for an API path: ids become {id}, API versions {version}."""
    parts = [("{version}" if _VERSION.match(p) else "{id}" if p.isdigit() else p)
             for p in urlparse(url).path.split("/") if p]
    return f"{method.upper()} /" + "/".join(parts)


def api_response(response: Any, *args: Any, **kwargs: Any) -> None:
    """A requests response hook: every HubSpot answer, by endpoint and status; 429s apart."""
    endpoint = endpoint_label(response.request.method or "GET", response.request.url or "")
    count("api_calls", endpoint=endpoint, status=response.status_code)
    if response.status_code == 429:
        count("api_rate_limited", endpoint=endpoint)


def budget_wait(seconds: Any) -> None:
    """The shared rate budget made a caller wait ``seconds`` (RateGovernor.acquire's return)."""
    if isinstance(seconds, (int, float)) and seconds > 0.001:
        count("rate_budget_waits")
        count("rate_budget_wait_seconds", float(seconds))


# -- reading ------------------------------------------------------------------------------------
@dataclass
class Figures:
    """The hash, parsed: ``counters[name][labels] = value`` (labels as sorted tuples)."""

    counters: dict[str, dict[tuple, float]] = field(default_factory=lambda: defaultdict(dict))

    def series(self, name: str) -> dict[tuple, float]:
        return self.counters.get(name, {})


def read(redis: Redis) -> Figures:
    """Everything every process has written; an absent hash is all zeros."""
    figures = Figures()
    for raw_field, raw_value in redis.hgetall(STATS_KEY).items():
        try:
            name, labels = json.loads(raw_field)
            figures.counters[name][tuple(sorted(labels.items()))] = float(raw_value)
        except (ValueError, TypeError):
            continue  # not ours: ignore rather than fail a scrape
    return figures
