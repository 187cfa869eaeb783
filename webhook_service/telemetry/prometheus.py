"""The custom Prometheus collector behind ``/metrics``: every figure that lives in Redis.

Read at scrape time, so the numbers are the cluster's, whichever web process answers: queue depth
and registries, pending events, workers, dead letters by handler, the worker-side counters of
``webhook_service.telemetry.stats`` (handler runs, failures and latency, HubSpot calls and 429s by endpoint, rate-budget
waits, suppressed and filtered changes) and the poller's lag per type. Each part is read on its own:
a part that fails is left out and logged once per scrape, and ``hubhook_redis_up`` says whether Redis
answered at all, so a scrape never fails.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis import Redis
from redis.exceptions import RedisError

from webhook_service import lanes
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.operator import status_report
from webhook_service.telemetry import stats

log = logging.getLogger("hubhook.metrics")
#: The poller's cursors are found with SCAN, which walks the whole keyspace: at most once a minute.
POLL_LAG_CACHE_SECONDS = 60.0
_COUNTERS = {  # stats name -> (metric name, help)
    "handler_runs": ("hubhook_handler_runs", "Handler calls, by handler."),
    "handler_failures": ("hubhook_handler_failures", "Handler calls that raised, by handler."),
    "api_calls": ("hubhook_hubspot_api_calls", "HubSpot API answers, by endpoint and status."),
    "api_rate_limited": ("hubhook_hubspot_rate_limited", "HubSpot 429 answers, by endpoint."),
    "rate_budget_waits": ("hubhook_rate_budget_waits", "Calls that waited for the shared rate budget."),
    "rate_budget_wait_seconds": ("hubhook_rate_budget_wait_seconds", "Seconds spent waiting for the rate budget."),
    "changes_suppressed": ("hubhook_changes_suppressed", "Changes dropped before dispatch, by reason."),
    "changes_filtered": ("hubhook_changes_filtered", "Changes a handler's property=/to=/from_= filter skipped."),
    "jobs": ("hubhook_jobs", "Jobs finished by workers, by function and outcome (ok, retried, failed)."),
    "journal_files": ("hubhook_journal_files", "Webhooks Journal files read and enqueued."),
    "journal_events": ("hubhook_journal_events", "Journal changes, by outcome (enqueued, duplicate)."),
    "journal_skipped": ("hubhook_journal_skipped",
                        "Journal events skipped or fields ignored, by reason (unknown action, type or field)."),
    "journal_malformed_files": ("hubhook_journal_malformed_files", "Journal files that were no journal file."),
    "journal_offsets_lost": ("hubhook_journal_offsets_lost", "Journal offsets HubSpot no longer served."),
    "journal_calls": ("hubhook_journal_calls", "Journal API answers, by status (exempt from the CRM budget)."),
}
_poll_cache: tuple[float, list[dict] | None] = (0.0, None)
_poll_lock = threading.Lock()


class RedisCollector:
    """``registry.register(RedisCollector(config, redis))``; one instance per scrape is fine."""

    def __init__(self, config: Config, redis: Redis) -> None:
        self.config = config
        self.redis = redis
        self.queue = build_queue(config, redis)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("hubhook_redis_up", "1 when Redis answered this scrape's first read.")
        try:
            facts = status_report.queue_facts(self.redis, self.queue)
        except RedisError as exc:
            log.warning("metrics: Redis unavailable (%s); only the receiver's counters are exported",
                        type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._queue(facts)
        for part in (self._portals, self._dead_letters, self._workers, self._figures, self._poll_lag, self._journal):
            try:
                yield from part()
            except Exception as exc:  # one missing part must not cost the whole scrape
                log.warning("metrics: %s skipped (%s: %s)", part.__name__.strip("_"), type(exc).__name__, exc)

    def _queue(self, facts: status_report.QueueFacts) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("hubhook_queue_jobs", "Jobs of the queue by state (as rq-dashboard shows).",
                                 labels=["queue", "state"])
        for state, value in (("queued", facts.head.queued), ("started", facts.started),
                             ("scheduled", facts.scheduled), ("deferred", facts.deferred),
                             ("failed", facts.dead_letters)):
            jobs.add_metric([facts.head.name, state], value)
        yield jobs
        yield GaugeMetricFamily("hubhook_pending_events", "Accepted events not yet processed (back-pressure).",
                                value=facts.head.pending_events)
        yield GaugeMetricFamily("hubhook_max_pending_events", "HUBHOOK_MAX_QUEUE_DEPTH (0: no limit).",
                                value=self.config.max_queue_depth)
        yield GaugeMetricFamily("hubhook_oldest_queued_job_age_seconds", "Age of the job at the head of the queue.",
                                value=facts.head.oldest_age or 0.0)

    def _portals(self) -> Iterator[Metric]:
        """The backlog per portal (``webhook_service.lanes``): pending events, jobs in its lane, paused."""
        rows = lanes.rows(self.redis)
        pending = GaugeMetricFamily("hubhook_portal_pending_events", "Accepted events not yet processed, per portal.",
                                    labels=["portal"])
        waiting = GaugeMetricFamily("hubhook_portal_waiting_jobs", "Delivery jobs waiting in the portal's lane.",
                                    labels=["portal"])
        paused = GaugeMetricFamily("hubhook_portal_paused", "1 while `hubhook portal pause` holds the portal.",
                                   labels=["portal"])
        for row in rows:
            pending.add_metric([row["portal"]], row["pending_events"])
            waiting.add_metric([row["portal"]], row["waiting_jobs"])
            paused.add_metric([row["portal"]], int(row["paused"]))
        yield from (pending, waiting, paused)

    def _dead_letters(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("hubhook_dead_letters", "Parked work (RQ failed registry), by handler.",
                                   labels=["handler"])
        for handler, value in sorted(status_report.dead_letters_by_handler(self.redis, self.queue).items()):
            family.add_metric([handler], value)
        yield family

    def _workers(self) -> Iterator[Metric]:
        rows = status_report.workers(self.redis, self.queue)
        family = GaugeMetricFamily("hubhook_workers", "Live RQ workers on the queue, by state.", labels=["state"])
        for state in sorted({r["state"] for r in rows} | {"busy", "idle"}):
            family.add_metric([state], sum(1 for r in rows if r["state"] == state))
        yield family

    def _figures(self) -> Iterator[Metric]:
        figures = stats.read(self.redis)
        for name, (metric, help_text) in _COUNTERS.items():
            series = figures.series(name)
            labels = sorted({k for key in series for k, _ in key})
            family = CounterMetricFamily(metric, help_text, labels=labels)
            for key, value in sorted(series.items()):
                found = dict(key)
                family.add_metric([found.get(label, "") for label in labels], value)
            yield family
        yield self._histogram(figures, "handler_seconds", "hubhook_handler_duration_seconds",
                              "Handler call duration, by handler.")

    @staticmethod
    def _histogram(figures: stats.Figures, name: str, metric: str, help_text: str) -> Metric:
        family = HistogramMetricFamily(metric, help_text, labels=["handler"])
        buckets: dict[str, dict[str, float]] = {}
        for key, value in figures.series(f"{name}_bucket").items():
            labels = dict(key)
            buckets.setdefault(labels.get("handler", ""), {})[labels["le"]] = value
        sums = {dict(k).get("handler", ""): v for k, v in figures.series(f"{name}_sum").items()}
        for handler, counts in sorted(buckets.items()):
            running, cumulative = 0.0, []
            for bound in [*map(str, stats.BUCKETS), "+Inf"]:
                running += counts.get(bound, 0.0)
                cumulative.append((bound, running))
            family.add_metric([handler], cumulative, sum_value=sums.get(handler, 0.0))
        return family

    def _journal(self) -> Iterator[Metric]:
        """The journal reader's lag behind the newest file and its offset's age (none before a reader ran)."""
        row = status_report.journal_row(self.config, self.redis)
        lag = GaugeMetricFamily("hubhook_journal_lag_seconds",
                                "How far the Webhooks Journal reader is behind the journal's latest file.")
        age = GaugeMetricFamily("hubhook_journal_offset_age_seconds", "Seconds since the journal offset last moved.")
        if row and row.get("lag_seconds") is not None:
            lag.add_metric([], row["lag_seconds"])
        if row and row.get("offset_age_seconds") is not None:
            age.add_metric([], row["offset_age_seconds"])
        yield lag
        yield age

    def _poll_lag(self) -> Iterator[Metric]:
        global _poll_cache
        with _poll_lock:
            at, rows = _poll_cache
            if time.monotonic() - at > POLL_LAG_CACHE_SECONDS or at == 0.0:
                rows = status_report.poll_rows(self.config)
                _poll_cache = (time.monotonic(), rows)
        family = GaugeMetricFamily("hubhook_poll_lag_seconds", "How far each poller cursor is behind now.",
                                   labels=["portal", "type", "stream"])
        for row in rows or ():
            if row.get("lag_seconds") is not None:
                family.add_metric([str(row["portal"]), row["type"], row["stream"]], row["lag_seconds"])
        yield family
