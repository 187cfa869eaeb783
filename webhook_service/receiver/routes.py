"""The receiver's routes: verify, validate, dedupe, enqueue, answer.

Nothing here calls HubSpot or runs a handler: the request path is bounded work (one HMAC per secret,
one JSON parse of at most 1 MiB, one Redis round trip), so HubSpot gets its answer in milliseconds.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import cast
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request
from redis import Redis
from redis.exceptions import RedisError

from webhook_service.errors import PayloadError, SignatureError
from webhook_service.logs import describe_events, fields
from webhook_service.objects import split_routable
from webhook_service.receiver import metrics, signature
from webhook_service.receiver.intake import drop_stale, enqueue_delivery
from webhook_service.receiver.schemas import TooManyEvents, parse_events

log = logging.getLogger("hubhook.receiver")
bp = Blueprint("hubhook", __name__)


def error(status: int, message: str, **extra) -> tuple[Response, int]:
    """Every error the receiver returns: JSON with the status and one safe sentence."""
    return jsonify({"error": message, "status": status, **extra}), status


def _signed_uri() -> str:
    """The URI HubSpot signed, byte for byte as it was sent (normalised later by ``signature``).

    With ``HUBHOOK_WEBHOOK_URL`` set, that is the target URL as registered in HubSpot: used as it is
    when it holds a query, else followed by the query this request arrived with. Without it, the
    scheme and host of this request and its raw target (path and query as sent), never Werkzeug's
    decoded ``request.url``: HubSpot signs the escapes it sent, and decoding ``%E2%9C%93`` or
    ``%7E`` and encoding again does not always give them back
    (https://developers.hubspot.com/docs/api/webhooks/validating-requests: "The URI used to build the
    source string must exactly match the original request").
    """
    public = current_app.config["HUBHOOK"].webhook_url
    path, query = _raw_target(request.environ)
    if public:
        if "?" in public:
            return public
        return public if query is None else f"{public}?{query}"
    return f"{request.scheme}://{request.host}{path}" + ("" if query is None else f"?{query}")


def _raw_target(environ: dict) -> tuple[str, str | None]:
    """The request target's raw path and raw query (None without a ``?``; "" for a trailing one).

    gunicorn puts the target as sent in ``RAW_URI`` (mod_wsgi and uWSGI in ``REQUEST_URI``); other
    servers only give ``PATH_INFO``, already percent-decoded, which is encoded again from its bytes
    (every escape HubSpot's v3 table decodes comes out the same either way), and ``QUERY_STRING``,
    which is raw. WSGI strings carry bytes as latin-1; a URI is signed as UTF-8.
    """
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target and not target.startswith("/") and "://" in target:  # absolute-form: drop scheme and host
        rest = target.split("://", 1)[1]
        start = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
        target = rest[start:] if rest[start:].startswith("/") else "/" + rest[start:]
    if target and target.startswith("/"):
        path, mark, query = target.partition("?")
        return _wsgi_text(path), (_wsgi_text(query) if mark else None)
    path_bytes = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    path = quote(path_bytes, safe="/:@!$&'()*+,;=~")
    query = environ.get("QUERY_STRING", "")
    return path, (_wsgi_text(query) if query else None)


def _wsgi_text(value: str) -> str:
    """A WSGI (latin-1) string as the text its bytes spell in UTF-8; a byte that is not UTF-8 cannot be
    in a URI HubSpot signed, so it becomes U+FFFD and the signature simply does not match."""
    return value.encode("latin-1", "replace").decode("utf-8", "replace")


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
        # verify only calls .get(name), which Werkzeug's Headers answers case-insensitively; Headers is no
        # Mapping subclass (iterating it yields pairs)
        version = signature.verify(cast("Mapping[str, str]", request.headers), body, secrets=config.client_secrets,
                                   method=request.method, uri=_signed_uri(),
                                   versions=config.signature_versions)
        events = parse_events(body, max_events=config.max_events_per_delivery)
    except SignatureError as exc:
        return refuse(401, "signature", str(exc), started)
    except TooManyEvents as exc:
        return refuse(413, "too_large", str(exc), started)
    except PayloadError as exc:
        return refuse(400, "payload", str(exc), started)
    received = len(events)
    events, unroutable = split_routable(events)
    if unroutable:
        drop_unroutable(unroutable)
    fresh, stale = drop_stale(events, config.dedupe_ttl)  # replays: older than any digest still kept
    redis = pooled = current_app.extensions["hubhook.redis"]
    try:
        if config.redis_min_replicas:  # one connection for the writes and the WAIT that follows them
            redis = Redis(connection_pool=pooled.connection_pool, single_connection_client=True)
        result = enqueue_delivery(redis, current_app.extensions["hubhook.queue"],
                                  fresh, dedupe_ttl=config.dedupe_ttl, job_timeout=config.job_timeout,
                                  max_pending=config.max_queue_depth, identities=config.journal_mode is not None,
                                  fair=config.fair_slice > 0, max_portal_pending=config.max_portal_depth)
        replicas = replicated(redis, config.redis_min_replicas) if not result.throttled else None
    except RedisError as exc:
        return refuse(503, "unavailable", "queue unavailable; retry later", started, events,
                      cause=type(exc).__name__)
    finally:
        if redis is not pooled:
            redis.close()
    if replicas is not None and replicas < config.redis_min_replicas:
        response, status = refuse(503, "replication", f"the delivery reached {replicas} of "
                                  f"{config.redis_min_replicas} Redis replicas in time; retry later", started, events)
        response.headers["Retry-After"] = str(REPLICATION_RETRY_AFTER)
        return response, status
    if result.throttled:
        waiting = (f"{result.pending} events of portal {result.portal} are waiting (limit {config.max_portal_depth} "
                   f"a portal)" if result.portal else f"{result.pending} events are waiting (limit "
                   f"{config.max_queue_depth})")
        response, status = refuse(429, "backpressure", f"{waiting}; retry later", started, events)
        response.headers["Retry-After"] = str(config.backpressure_retry_after)
        return response, status
    metrics.ENQUEUED.inc(result.enqueued)
    metrics.DUPLICATES.inc(result.duplicates)
    metrics.EVENTS_DROPPED.labels("stale").inc(stale)
    seconds = time.perf_counter() - started
    metrics.LATENCY.observe(seconds)
    log.log(logging.WARNING if stale else logging.INFO, "delivery accepted", extra=fields(
        status=200, events=received, enqueued=result.enqueued, duplicates=result.duplicates, stale=stale,
        job=result.job_id, signature=version, ms=round(seconds * 1000, 2), **describe_events(events)))
    return jsonify({"received": received, "enqueued": result.enqueued,
                    "duplicates": result.duplicates, "stale": stale, "job": result.job_id}), 200


#: Milliseconds the receiver waits for HUBHOOK_REDIS_MIN_REPLICAS replicas to confirm a delivery's writes:
#: well inside HubSpot's 5 s timeout for a webhook answer (https://developers.hubspot.com/docs/api/webhooks).
REPLICATION_WAIT_MS = 1000
#: Seconds in the Retry-After of a 503 for a write that did not reach its replicas in time.
REPLICATION_RETRY_AFTER = 10


def replicated(redis: Redis, min_replicas: int) -> int | None:
    """How many replicas confirmed this connection's writes (Redis's WAIT), or None when not asked to wait.

    Why: Redis replicates asynchronously, so a 2xx answered right after the write can be lost when the
    master dies before a replica has the write and Sentinel promotes that replica. Waiting for
    ``min_replicas`` confirmations before the 2xx means an acknowledged delivery survives the failover;
    when fewer confirm in ``REPLICATION_WAIT_MS`` the caller answers 503, so HubSpot sends it again. The
    write stays on the master: the retry then finds it seen (and waits again) or, after a failover that
    lost it, enqueues it afresh. WAIT counts the writes of the connection it runs on, so the receiver
    runs the intake and the WAIT on one connection.
    """
    if not min_replicas:
        return None
    return int(redis.wait(min_replicas, REPLICATION_WAIT_MS))


def drop_unroutable(events: list[dict]) -> None:
    """Count and log (one line) events whose object type is not a well-formed name: they are not enqueued."""
    metrics.EVENTS_DROPPED.labels("object_type").inc(len(events))
    type_ids = list(dict.fromkeys(repr(e["objectTypeId"])[:70] for e in events if "objectTypeId" in e))[:5]
    log.warning("events dropped: object type is not a well-formed HubSpot type name", extra=fields(
        reason="object_type", dropped=len(events), object_type_ids=type_ids, **describe_events(events)))


def refuse(status: int, reason: str, message: str, started: float | None = None, events: Sequence[dict] = (),
           **extra: str) -> tuple[Response, int]:
    """Answer a delivery with an error: counted by reason, one log line, one JSON sentence."""
    metrics.rejected(reason)
    ms: float | None = None
    if started is not None:
        ms = round((time.perf_counter() - started) * 1000, 2)
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
    from webhook_service.operator.status_report import queue_head

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
