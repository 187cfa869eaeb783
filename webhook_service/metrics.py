"""``GET /metrics``: the receiver's own counters plus every other process's figures, read from Redis.

The receiver's counters live in prometheus_client's multiprocess mode under gunicorn (``hubhook web``
sets ``PROMETHEUS_MULTIPROC_DIR`` and ``webhook_service.gunicorn_conf`` marks dead workers), so a
scrape answered by any gunicorn worker shows all of them. Queue depth, dead letters, worker-side
handler and API figures and poll lag are read from Redis at scrape time by ``jobs.collector``; they
are cluster-wide, so with several web hosts take their ``max``, not their ``sum``.

Without ``PROMETHEUS_MULTIPROC_DIR`` (tests, ``flask run``) the counters are this process's own.
"""
from __future__ import annotations

import logging
import os
import tempfile

from flask import Blueprint, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

log = logging.getLogger("hubhook.receiver")
REJECT_REASONS = ("signature", "payload", "too_large", "unavailable", "backpressure")

RECEIVED = Counter("hubhook_deliveries_received", "Deliveries HubSpot posted to the receiver.", registry=None)
REJECTED = Counter("hubhook_deliveries_rejected", "Deliveries answered with an error, by reason.", ["reason"],
                   registry=None)
DUPLICATES = Counter("hubhook_duplicates_dropped", "Redelivered events dropped before enqueueing.", registry=None)
ENQUEUED = Counter("hubhook_events_enqueued", "Events enqueued by the receiver.", registry=None)
EVENTS_DROPPED = Counter("hubhook_events_dropped", "Events of accepted deliveries dropped before enqueueing, "
                         "by reason (object_type: not a well-formed HubSpot object type name; stale: older "
                         "than the dedupe window, so a replay).", ["reason"], registry=None)
LATENCY = Histogram("hubhook_delivery_seconds", "Time the receiver took to answer a delivery.", registry=None,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
LOCAL = (RECEIVED, REJECTED, DUPLICATES, ENQUEUED, LATENCY, EVENTS_DROPPED)
for _reason in REJECT_REASONS:
    REJECTED.labels(_reason)  # every reason is exported from the start, at 0
EVENTS_DROPPED.labels("object_type")
EVENTS_DROPPED.labels("stale")

bp = Blueprint("hubhook_metrics", __name__)


def rejected(reason: str) -> None:
    """Count one refused delivery (``reason`` is one of REJECT_REASONS)."""
    REJECTED.labels(reason).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def prepare_metrics_dir() -> str:
    """Before gunicorn starts (``hubhook web``): a fresh directory, or the operator's one wiped of old
    ``*.db`` files, whose counters would otherwise be added to the new ones."""
    given = multiprocess_dir()
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
        return given
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hubhook-metrics-")
    os.environ["HUBHOOK_OWNS_METRICS_DIR"] = "1"  # gunicorn_conf.on_exit removes it
    return os.environ["PROMETHEUS_MULTIPROC_DIR"]


def registry_for_scrape() -> CollectorRegistry:
    """A fresh registry per scrape: the receiver's counters (all gunicorn workers) plus Redis figures."""
    registry = CollectorRegistry(support_collectors_without_names=True)
    if multiprocess_dir():
        from prometheus_client import multiprocess
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in LOCAL:
            registry.register(metric)
    # webhook_service never imports jobs at module level
    from jobs.collector import RedisCollector
    registry.register(RedisCollector(current_app.config["HUBHOOK"], current_app.extensions["hubhook.redis"]))
    return registry


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; never fails because Redis or a key is missing (see ``hubhook_redis_up``)."""
    return Response(generate_latest(registry_for_scrape()), mimetype=CONTENT_TYPE_LATEST)
