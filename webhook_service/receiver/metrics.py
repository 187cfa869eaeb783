"""``GET /metrics``: the receiver's own counters plus every other process's figures, read from Redis.

The receiver's counters live in prometheus_client's multiprocess mode under gunicorn (``hubhook web``
sets ``PROMETHEUS_MULTIPROC_DIR`` and ``webhook_service.receiver.gunicorn_conf`` marks dead workers), so a
scrape answered by any gunicorn worker shows all of them. Queue depth, dead letters, worker-side
handler and API figures and poll lag are read from Redis at scrape time by
``webhook_service.telemetry.prometheus``; they are cluster-wide, so with several web hosts take
their ``max``, not their ``sum``.

Without ``PROMETHEUS_MULTIPROC_DIR`` (tests, ``flask run``) the counters are this process's own.

The scrape shows handler module paths, custom object names, portal ids and dead-letter counts, and it
runs Redis reads, so it is not for whoever reaches the webhook listener: it answers only a request
carrying ``Authorization: Bearer $HUBHOOK_METRICS_TOKEN``, and without that setting it is off (404).
"""
from __future__ import annotations

import hmac
import logging
import os

from flask import Blueprint, Response, current_app, request
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
    """The folder prometheus_client itself counts in: it reads the variable from the environment (set by
    metrics_dir.ensure), so this asks the same place. The user's setting is read by Config.metrics_dir."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def bearer_authorized() -> bool:
    """Whether this request carries ``Authorization: Bearer <HUBHOOK_METRICS_TOKEN>`` (constant-time check);
    always False when no token is configured."""
    token = current_app.config["HUBHOOK"].metrics_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def registry_for_scrape() -> CollectorRegistry:
    """A fresh registry per scrape: the receiver's counters (all gunicorn workers) plus Redis figures."""
    registry = CollectorRegistry(support_collectors_without_names=True)
    if multiprocess_dir():
        from prometheus_client import multiprocess
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in LOCAL:
            registry.register(metric)
    from webhook_service.telemetry.prometheus import RedisCollector  # read at scrape time only
    registry.register(RedisCollector(current_app.config["HUBHOOK"], current_app.extensions["hubhook.redis"]))
    return registry


@bp.get("/metrics")
def metrics() -> Response | tuple[Response, int]:
    """Prometheus text format, for the bearer of the metrics token; never fails because Redis or a key is
    missing (see ``hubhook_redis_up``)."""
    from webhook_service.receiver.routes import error

    if not current_app.config["HUBHOOK"].metrics_token:
        return error(404, "metrics are off on this listener: set HUBHOOK_METRICS_TOKEN and scrape with "
                          "'Authorization: Bearer <token>'")
    if not bearer_authorized():
        log.warning("metrics scrape refused: missing or wrong bearer token")
        response, status = error(401, "send 'Authorization: Bearer <HUBHOOK_METRICS_TOKEN>' to read the "
                                      "metrics")
        response.headers["WWW-Authenticate"] = 'Bearer realm="hubhook metrics"'
        return response, status
    return Response(generate_latest(registry_for_scrape()), mimetype=CONTENT_TYPE_LATEST)
