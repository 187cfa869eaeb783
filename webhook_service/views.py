"""The receiver's routes: verify, validate, dedupe, enqueue, answer.

Nothing here calls HubSpot or runs a handler: the request path is bounded work (one HMAC per secret,
one JSON parse of at most 1 MiB, one Redis transaction), so HubSpot gets its answer in milliseconds.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request
from redis.exceptions import RedisError

from . import signature
from .errors import PayloadError, SignatureError
from .intake import enqueue_delivery
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
    config = current_app.config["HUBHOOK"]
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return error(413, f"body is larger than {config.max_body_bytes} bytes")
    body = request.get_data(cache=False)  # MAX_CONTENT_LENGTH turns a longer stream into 413
    try:
        version = signature.verify(request.headers, body, secrets=config.client_secrets,
                                   method=request.method, uri=_signed_uri())
        events = parse_events(body)
    except SignatureError as exc:
        log.warning("delivery rejected: 401 %s", exc)
        return error(401, str(exc))
    except PayloadError as exc:
        log.warning("delivery rejected: 400 %s", exc)
        return error(400, str(exc))
    try:
        result = enqueue_delivery(current_app.extensions["hubhook.redis"], current_app.extensions["hubhook.queue"],
                                  events, dedupe_ttl=config.dedupe_ttl, job_timeout=config.job_timeout)
    except RedisError as exc:
        log.error("delivery not accepted: Redis unavailable (%s); HubSpot will retry", type(exc).__name__)
        return error(503, "queue unavailable; retry later")
    log.info("delivery accepted: %d events, %d new, %d duplicates, job=%s, signature=%s, %.1f ms",
             result.received, result.enqueued, result.duplicates, result.job_id, version,
             (time.perf_counter() - started) * 1000)
    return jsonify({"received": result.received, "enqueued": result.enqueued,
                    "duplicates": result.duplicates, "job": result.job_id}), 200


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    try:
        current_app.extensions["hubhook.redis"].ping()
    except RedisError as exc:
        return jsonify({"status": "unavailable", "redis": type(exc).__name__}), 503
    return jsonify({"status": "ok", "redis": "ok"}), 200
