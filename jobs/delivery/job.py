"""The jobs: enrich a delivery's changes and call every matching handler, each in isolation.

``process_delivery`` runs once per accepted delivery (or poll batch). It fetches in batches, then
calls each (handler, object) pair once. A handler that raises does not fail the job: it becomes its
own ``run_handler`` job, scheduled with backoff, that re-fetches fresh data for that one object and
calls only that handler; when its retries are spent RQ parks it in the failed-job registry, hubhook's
dead-letter registry, where ``hubhook replay`` finds it by handler name.

A delivery job also takes small deliveries queued behind it along (``jobs.delivery.batching``), and hands on
what HubSpot refused, rescheduled or parked (``jobs.delivery.parking``), so it fails only on a bug.
"""
from __future__ import annotations

import logging

from redis.exceptions import RedisError
from rq import get_current_job
from rq.job import Job

from jobs.delivery import batching, dispatch, fetching, parking
from jobs.delivery.fetching import Enrichment, ObjectChanges
from jobs.hubspot.client import HubSpotClient
from jobs.poller import reconcile
from jobs.worker import context, recording
from webhook_service import lanes, logs, objects
from webhook_service.errors import (
    MirrorUnavailable,
    MissingScopes,
    NoToken,
    RateLimited,
    TransientAPIError,
)
from webhook_service.events import Event
from webhook_service.logs import fields
from webhook_service.receiver.intake import delivery_job
from webhook_service.router import Handler

log = logging.getLogger("hubhook.worker")
_EXPECTED = (RateLimited, MissingScopes, NoToken, TransientAPIError, MirrorUnavailable)


def process_delivery(events: list[dict], source: str = "webhook", attempt: int = 0) -> dict:
    """Enrich and dispatch one delivery (and the small ones queued behind it); hand on what HubSpot
    refused. ``attempt`` counts earlier HubSpot failures of this work (jobs.delivery.parking)."""
    ctx = context.current()
    fair_slice = ctx.config.fair_slice
    if fair_slice > 0 and lanes.is_paused(ctx.redis, portal := lanes.portal_of(events)):
        return _hand_back_paused(ctx, events, source, attempt, portal)
    batch = batching.gather(ctx.redis, ctx.queue, events, source, attempt, job_timeout=ctx.config.job_timeout,
                            max_events=batching.limit(ctx.config.coalesce_max_events, ctx.router.handlers, events),
                            fair_slice=fair_slice)
    try:
        events = _routable(batch.events)
        if source in ("webhook", "journal"):  # so reconciliation polling does not deliver them a second time
            reconcile.note_webhook_changes(ctx.redis, events, ctx.config.reconcile_interval)
        work = []
        for item in fetching.group_changes(dispatch.drop_echoes(ctx.config, events)):
            if hs := dispatch.handlers_for(ctx.router.handlers, item):
                work.append((item, hs))
            else:
                dispatch.note_unmatched(ctx.router.handlers, item, source)
        fetched, failed = fetching.fetch_groups(_client(ctx, source), work) if work else ({}, {})
        calls = failures = 0
        deferred = []
        buffered: dict[str, tuple[Handler, list[ObjectChanges]]] = {}   # handlers with a flush, their objects
        dispatched = 0
        for item, handlers in work:
            # a big batch ran long, or ran its slice while another portal waits: the rest goes to a new job
            if item.key in fetched and (batching.overdue(batch, item.changes)
                                        or (dispatched and batching.yields(batch))):
                deferred.append(item)
                continue
            dispatched += item.key in fetched
            for handler in (dispatch.selected(handlers, item, fetched[item.key], source, everyone=ctx.router.handlers)
                            if item.key in fetched else ()):
                calls += 1
                ok = _call(ctx, handler, item, fetched[item.key], source)
                failures += not ok
                if ok and handler.flush is not None:
                    buffered.setdefault(handler.name, (handler, []))[1].append(item)
        failures += _flush(ctx, buffered, source)
        with ctx.redis.pipeline() as pipe:
            handed = parking.settle(pipe, ctx.queue, ctx.config, batch,
                                    [(item, failed[item.key]) for item, _ in work if item.key in failed], deferred)
            pipe.execute()
    except BaseException:
        _release(ctx, batch)
        raise
    recording.job_done(batch.events, objects=len(work), calls=calls, failures=failures, source=source,
                     deliveries=len(batch.origins), **handed)
    return {"events": len(batch.events), "deliveries": len(batch.origins), "objects": len(work), "calls": calls,
            "failures": failures, **handed}


def _hand_back_paused(ctx: context.Context, events: list[dict], source: str, attempt: int, portal: str | None) -> dict:
    """The portal is paused (``hubhook portal pause``): the events go back to the head of its lane as a
    new job, unrun, and stay pending until ``hubhook portal resume``."""
    job = delivery_job(ctx.queue, events, source=source, job_timeout=ctx.config.job_timeout, attempt=attempt)
    with ctx.redis.pipeline() as pipe:
        lanes.push_front(pipe, ctx.queue, job, portal)
        pipe.execute()
    log.info("portal %s is paused: %d events handed back to its lane unrun (job %s)", portal, len(events), job.id)
    return {"events": len(events), "deliveries": 1, "objects": 0, "calls": 0, "failures": 0,
            "rescheduled": len(events), "paused": True}


def run_handler(handler_name: str, changes: list[dict], source: str = "webhook") -> dict:
    """Retry one handler for one object with freshly fetched data; raising lets RQ retry, then park it."""
    ctx = context.current()
    handler = ctx.router.get(handler_name)
    (item,) = fetching.group_changes(changes)
    try:
        enrichment = fetching.fetch(_client(ctx, source), [(item, [handler])])[item.key]
        with recording.handler_run(handler_name, item, source, attempt="retry", expected=_EXPECTED):
            handler.fn(_event(ctx, handler, item, enrichment, source))
            if handler.flush is not None:
                handler.flush()
    except (RateLimited, MissingScopes, NoToken) as exc:  # no retry spent: rescheduled after the wait, or parked
        return parking.defer_running_handler(ctx.queue, ctx.config, handler_name, changes, source, item, exc)
    except Exception:  # RQ retries it (Retry) or parks it: say when
        wait = _next_retry(get_current_job())
        if wait is not None:
            _retry_scheduled(handler_name, item, wait)
        raise
    return {"handler": handler_name, "object": f"{item.object_type}:{item.object_id}"}


def _routable(events: list[dict]) -> list[dict]:
    """``events`` without those whose object type is not a well-formed name: the receiver drops them
    before enqueueing, so only a job enqueued by an older version can hold one. Never retried."""
    kept, dropped = objects.split_routable(events)
    if dropped:
        log.warning("dropped %d event(s) whose object type is not a well-formed HubSpot type name",
                    len(dropped))
    return kept


def _event(ctx: context.Context, handler: Handler, item: ObjectChanges, enrichment: Enrichment,
           source: str) -> Event:
    return dispatch.build_event(handler, item, enrichment, source, _client(ctx, source), ctx.lock)


def _call(ctx: context.Context, handler: Handler, item: ObjectChanges, enrichment: Enrichment,
          source: str) -> bool:
    try:  # observe logs the failure (no traceback when HubSpot refused a write-back: _EXPECTED)
        with recording.handler_run(handler.name, item, source, expected=_EXPECTED):
            handler.fn(_event(ctx, handler, item, enrichment, source))
    except Exception as exc:
        wait = parking.retry_handler(ctx.queue, ctx.config, handler.name, item, source, exc)
        if wait is None:
            log.info("handler %s for %s %s parked in the dead-letter registry", handler.name, item.object_type,
                     item.object_id)
        else:
            _retry_scheduled(handler.name, item, wait)
        return False
    return True


def _retry_scheduled(name: str, item: ObjectChanges, wait: float) -> None:
    log.info("handler retry scheduled", extra=fields(handler=name, type=item.object_type, object_id=item.object_id,
                                                     retry_in=round(wait, 1)))


def _next_retry(job: Job | None) -> float | None:
    """The wait before RQ runs a failing ``run_handler`` job again, or None when its retries are spent
    (it is then parked, and the worker says so)."""
    return float(job.get_retry_interval()) if job is not None and job.retries_left else None


def _flush(ctx: context.Context, buffered: dict[str, tuple[Handler, list[ObjectChanges]]], source: str) -> int:
    """Let each buffering handler write what this job gave it; when that fails, each of its objects is
    retried alone (like a failing handler), and the other handlers are untouched. Returns the failures."""
    failures = 0
    for handler, items in buffered.values():
        try:
            handler.flush()  # type: ignore[misc]
        except Exception as exc:
            log.warning("handler %s could not write %d object(s) (%s: %s); each will be retried alone",
                        handler.name, len(items), type(exc).__name__, logs.redact(str(exc))[:200])
            for item in items:
                parking.retry_handler(ctx.queue, ctx.config, handler.name, item, source, exc)
            failures += len(items)
    return failures


def _client(ctx: context.Context, source: str) -> HubSpotClient:
    """Polled work draws on the poll share of the budget, so webhook work keeps priority."""
    return ctx.poll_client if source == "poll" else ctx.webhook_client


def _release(ctx: context.Context, batch: batching.Batch) -> None:
    try:
        batching.release(ctx.redis, batch)
    except RedisError as exc:  # the claim's lease runs out and maintenance gives the deliveries back
        log.error("could not give back %d claimed deliveries now (%s); they return when the claim's lease ends",
                  len(batch.claimed), type(exc).__name__)

