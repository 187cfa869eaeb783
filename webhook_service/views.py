"""The receiver's routes: verify, validate, dedupe, enqueue, answer.

Nothing here calls HubSpot or runs a handler: the request path is bounded work (one HMAC per secret,
one JSON parse of at most 1 MiB, one Redis round trip), so HubSpot gets its answer in milliseconds.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request
from redis.exceptions import RedisError

from . import metrics, signature
from .errors import PayloadError, SignatureError
from .intake import enqueue_delivery
from .logs import describe_events, fields
from .schemas import parse_events

log = logging.getLogger("hubhook.receiver")
bp = Blueprint("hubhook", __name__)


def error(status: int, message: str, **extra) -> tuple[Response, int]:
    """Every error the receiver returns: JSON with the status and one safe sentence."""
    return jsonify({"error": message, "status": status, **extra}), status


def _signed_uri() -> str:
    """The URI HubSpot signed: the configured public URL (plus this request's query), else request.url."""
    public = current_app.config["HUBHOOK"].webhook_url
    if not public:
        return request.url
    query = request.query_string.decode("latin-1")
    return f"{public}?{query}" if query else public


@bp.post("/webhooks/hubspot")
def receive() -> tuple[Response, int]:
    started = time.perf_counter()
    metrics.RECEIVED.inc()
    config = current_app.config["HUBHOOK"]
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return refuse(413, "too_large", f"body is larger than {config.max_body_bytes} bytes", started)
    body = request.get_data(cache=False)
    if len(body) > config.max_body_bytes:
        # A chunked body: Werkzeug stops reading at MAX_CONTENT_LENGTH (the cap + 1, app.py) *without*
        # an error, so a longer body would arrive cut short and fail as a 401.
        return refuse(413, "too_large", f"body is larger than {config.max_body_bytes} bytes", started)
    try:
        version = signature.verify(request.headers, body, secrets=config.client_secrets,
                                   method=request.method, uri=_signed_uri())
        events = parse_events(body)
    except SignatureError as exc:
        return refuse(401, "signature", str(exc), started)
    except PayloadError as exc:
        return refuse(400, "payload", str(exc), started)
    try:
        result = enqueue_delivery(current_app.extensions["hubhook.redis"], current_app.extensions["hubhook.queue"],
                                  events, dedupe_ttl=config.dedupe_ttl, job_timeout=config.job_timeout,
                                  max_pending=config.max_queue_depth)
    except RedisError as exc:
        return refuse(503, "unavailable", "queue unavailable; retry later", started, events,
                      cause=type(exc).__name__)
    if result.throttled:
        response, status = refuse(429, "backpressure", f"{result.pending} events are waiting (limit "
                                  f"{config.max_queue_depth}); retry later", started, events)
        response.headers["Retry-After"] = str(config.backpressure_retry_after)
        return response, status
    metrics.ENQUEUED.inc(result.enqueued)
    metrics.DUPLICATES.inc(result.duplicates)
    seconds = time.perf_counter() - started
    metrics.LATENCY.observe(seconds)
    log.info("delivery accepted", extra=fields(
        status=200, events=result.received, enqueued=result.enqueued, duplicates=result.duplicates,
        job=result.job_id, signature=version, ms=round(seconds * 1000, 2), **describe_events(events)))
    return jsonify({"received": result.received, "enqueued": result.enqueued,
                    "duplicates": result.duplicates, "job": result.job_id}), 200


def refuse(status: int, reason: str, message: str, started: float | None = None, events: list[dict] = (),
           **extra: str) -> tuple[Response, int]:
    """Answer a delivery with an error: counted by reason, one log line, one JSON sentence."""
    metrics.rejected(reason)
    ms = round((time.perf_counter() - started) * 1000, 2) if started is not None else None
    if started is not None:
        metrics.LATENCY.observe(ms / 1000)
    level = logging.ERROR if status == 503 else logging.WARNING
    log.log(level, "delivery rejected", extra=fields(status=status, reason=reason, error=message, ms=ms, **extra,
                                                    **(describe_events(events) if events else {})))
    return error(status, message)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """What a load balancer needs: 200 when Redis answers, 503 when it does not. How much work waits
    (queued jobs, pending events, the oldest job's age) is shown only to the bearer of the metrics token,
    like ``/metrics``, where the same figures are."""
    # webhook_service never imports jobs at module level
    from jobs.overview import queue_head

    redis = current_app.extensions["hubhook.redis"]
    try:
        if not metrics.bearer_authorized():
            redis.ping()
            return jsonify({"status": "ok", "redis": "ok"}), 200
        head = queue_head(redis, current_app.extensions["hubhook.queue"])
    except RedisError as exc:
        return jsonify({"status": "unavailable", "redis": type(exc).__name__}), 503
    return jsonify({"status": "ok", "redis": "ok", "queue": head.name, "queued_jobs": head.queued,
                    "pending_events": head.pending_events, "oldest_job_age_seconds": head.oldest_age}), 200
