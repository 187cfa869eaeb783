"""Each job and handler run is recorded three ways: a JSON log line, figures for /metrics, history.

Job code calls these few functions and nothing else about observability, so ``process.py`` stays
about dispatch. Everything Redis-bound is buffered and written after the job, in the MULTI that
records the job's success (``write``, webhook_service.private_apis.lean_worker) or else by
``flush``, keeping handler latency free of bookkeeping round trips.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import get_current_job

from jobs.delivery.fetching import ObjectChanges
from webhook_service.logs import describe_events, fields, redact
from webhook_service.telemetry import object_history, stats

log = logging.getLogger("hubhook.worker")


def _item_fields(item: ObjectChanges) -> dict[str, Any]:
    return {"portal": item.portal_id, "type": item.object_type, "object_id": item.object_id,
            "event_ids": [c.get("eventId") for c in item.changes]}


@contextmanager
def handler_run(handler: str, item: ObjectChanges, source: str, *, attempt: str = "first",
                expected: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Time one handler call; record ok or failed and re-raise. The failure's log line carries the
    traceback, except for ``expected`` errors (HubSpot refusing a write-back), which are one line."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        seconds = time.perf_counter() - started
        # redacted before the cut to 200 characters, so no token is left half-shown
        error = redact(f"{type(exc).__name__}: {str(exc)[:2000]}")[:200]
        _record_run(handler, item, source, attempt, seconds, error)
        log.error("handler failed", exc_info=not isinstance(exc, expected), extra=fields(
            handler=handler, outcome="failed", attempt=attempt, ms=round(seconds * 1000, 1), error=error,
            source=source, **_item_fields(item)))
        raise
    seconds = time.perf_counter() - started
    _record_run(handler, item, source, attempt, seconds, None)
    log.info("handler ok", extra=fields(handler=handler, outcome="ok", attempt=attempt,
                                        ms=round(seconds * 1000, 1), source=source, **_item_fields(item)))


def _record_run(handler: str, item: ObjectChanges, source: str, attempt: str, seconds: float,
                error: str | None) -> None:
    stats.count("handler_runs", handler=handler)
    if error:
        stats.count("handler_failures", handler=handler)
    stats.observe("handler_seconds", seconds, handler=handler)
    object_history.add(item.object_type, item.object_id, {
        "kind": "handler", "handler": handler, "outcome": "failed" if error else "ok", "attempt": attempt,
        "ms": round(seconds * 1000, 1), "source": source, "portal": item.portal_id,
        **({"error": error} if error else {})})


def object_seen(item: ObjectChanges, source: str, matched: list[str], skipped: Sequence[dict] = ()) -> None:
    """What one job brought for one object: its changes, the handlers it will call, and for each handler
    a ``property=``/``to=``/``from_=`` filter skipped, which filter and which change (``hubhook inspect``)."""
    object_history.add(item.object_type, item.object_id, {
        "kind": "seen", "source": source, "portal": item.portal_id,
        "changes": [object_history.compact(c) for c in item.changes], "handlers": matched,
        **({"filtered": [s["handler"] for s in skipped], "skipped": list(skipped)} if skipped else {})})
    for entry in skipped:
        stats.count("changes_filtered", handler=entry["handler"])


def suppressed(items: Iterable[ObjectChanges], reason: str = "echo") -> None:
    """Changes dropped before dispatch (HUBHOOK_IGNORE_SOURCES): counted and kept in the history."""
    for item in items:
        stats.count("changes_suppressed", len(item.changes), reason=reason)
        object_history.add(item.object_type, item.object_id, {
            "kind": "suppressed", "reason": reason, "portal": item.portal_id,
            "changes": [object_history.compact(c) for c in item.changes]})


def job_done(events: list[dict], *, objects: int, calls: int, failures: int, source: str, **counts: int) -> None:
    """The one line per job (``counts``: deliveries taken along, events rescheduled or parked, ...)."""
    job = get_current_job()
    log.info("job done", extra=fields(job=job.id if job else None, source=source, events=len(events),
                                      objects=objects, calls=calls, failures=failures, **counts,
                                      **describe_events(events)))


def write(pipe: Pipeline, history_ttl: int) -> tuple[dict[str, float], set[str]] | None:
    """Queue the buffered figures and histories on ``pipe`` (the worker's end-of-job MULTI,
    webhook_service.private_apis.lean_worker); return what to ``put_back`` if it fails, or None when
    nothing was buffered."""
    taken = stats.write(pipe)
    written = object_history.write(pipe, history_ttl)
    return taken if taken[0] or written else None


def put_back(taken: tuple[dict[str, float], set[str]] | None) -> None:
    """Keep the figures of a failed write for the next one (the histories are lost: a convenience)."""
    if taken is not None:
        stats.put_back(taken)


def flush(redis: Redis, history_ttl: int) -> None:
    """Write the buffered figures and histories in one pipeline; a Redis error costs the histories only."""
    with redis.pipeline(transaction=False) as pipe:
        taken = write(pipe, history_ttl)
        if taken is None:
            return
        try:
            pipe.execute()
        except RedisError as exc:
            put_back(taken)
            log.warning("could not write figures and object history to Redis (%s)", type(exc).__name__)
