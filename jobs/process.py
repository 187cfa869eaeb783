"""The jobs: enrich a delivery's changes and call every matching handler, each in isolation.

``process_delivery`` runs once per accepted delivery (or poll batch). It fetches in batches, then
calls each (handler, object) pair once. A handler that raises does not fail the job: it becomes its
own ``run_handler`` job, scheduled with backoff, that re-fetches fresh data for that one object and
calls only that handler; when its retries are spent RQ parks it in the failed-job registry, hubhook's
dead-letter registry, where ``hubhook replay`` finds it by handler name.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from rq import Retry

from webhook_service.events import Event
from webhook_service.router import Handler

from . import context, enrich
from .enrich import Enrichment, ObjectChanges

log = logging.getLogger("hubhook.worker")
RUN_HANDLER = "jobs.process.run_handler"
DEAD_LETTER_TTL = 30 * 86400


def process_delivery(events: list[dict], source: str = "webhook") -> dict:
    """Enrich and dispatch one delivery; raises only when HubSpot itself fails (RQ retries the job)."""
    ctx = context.current()
    work = [(item, hs) for item in enrich.group_changes(events) if (hs := _handlers_for(ctx.router.handlers, item))]
    fetched = enrich.fetch(ctx.webhook_client, work) if work else {}
    calls = failures = 0
    for item, handlers in work:
        for handler in handlers:
            calls += 1
            if not _call(ctx, handler, item, fetched[item.key], source):
                failures += 1
                _schedule_retry(ctx, handler, item, source)
    log.info("job done: %d events, %d objects, %d handler calls, %d failed (retried alone), source=%s",
             len(events), len(work), calls, failures, source)
    return {"events": len(events), "objects": len(work), "calls": calls, "failures": failures}


def run_handler(handler_name: str, changes: list[dict], source: str = "webhook") -> dict:
    """Retry one handler for one object with freshly fetched data; raising lets RQ retry, then park it."""
    ctx = context.current()
    handler = ctx.router.get(handler_name)
    (item,) = enrich.group_changes(changes)
    enrichment = enrich.fetch(ctx.webhook_client, [(item, [handler])])[item.key]
    handler.fn(_event(ctx, handler, item, enrichment, source))
    log.info("handler %s succeeded on retry for %s %s", handler_name, item.object_type, item.object_id)
    return {"handler": handler_name, "object": f"{item.object_type}:{item.object_id}"}


def _handlers_for(handlers: list[Handler], item: ObjectChanges) -> list[Handler]:
    return [h for h in handlers if any(h.matches(c) for c in item.changes)]


def _event(ctx: context.Context, handler: Handler, item: ObjectChanges, enrichment: Enrichment,
           source: str) -> Event:
    latest = [c for c in item.changes if handler.matches(c)][-1]
    return Event.build(
        object_type=item.object_type, object_id=item.object_id, portal_id=item.portal_id,
        subscription_type=f"{item.object_type}.{latest['subscriptionType'].split('.', 1)[1]}",
        source=source, changes=item.changes, record=enrichment.record, associations=enrichment.associations,
        merged_object_ids=item.merged_ids, handler=handler.name, hubspot=ctx.webhook_client,
        lock_factory=ctx.lock,
    )


def _call(ctx: context.Context, handler: Handler, item: ObjectChanges, enrichment: Enrichment,
          source: str) -> bool:
    try:
        handler.fn(_event(ctx, handler, item, enrichment, source))
    except Exception:
        log.exception("handler %s failed for %s %s; it will be retried alone",
                      handler.name, item.object_type, item.object_id)
        return False
    return True


def _schedule_retry(ctx: context.Context, handler: Handler, item: ObjectChanges, source: str) -> None:
    first, *rest = ctx.config.handler_retries or (0,)
    ctx.queue.enqueue_in(
        timedelta(seconds=first), RUN_HANDLER, handler.name, item.changes, source,
        retry=Retry(max=len(rest), interval=list(rest)) if rest else None,
        description=f"retry {handler.name} for {item.object_type} {item.object_id}",
        meta={"handler": handler.name, "object": f"{item.object_type}:{item.object_id}"},
        job_timeout=ctx.config.job_timeout, result_ttl=0, failure_ttl=DEAD_LETTER_TTL,
    )
