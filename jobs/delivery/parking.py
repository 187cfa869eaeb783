"""What happens to work HubSpot did not let a job finish: it is rescheduled or parked, never dropped.

The job itself returns normally; the events it could not enrich become a new job, per origin
delivery (so each keeps its source and attempt count):

- 429 / local budget full / paused portal: rescheduled after the wait the governor chose (plus a
  little jitter so a crowd of jobs does not return at one instant); the attempt count is unchanged,
  so rate limits never spend retries and never land in the dead-letter registry;
- 5xx or timeouts (after urllib3's short retries) and other API errors: rescheduled with the
  delivery's backoff (5 s, 30 s, 2 min, 10 min, 30 min, each +-25% jitter), then parked;
- 403 MISSING_SCOPES, or no token for the portal: parked at once (retrying cannot help) with one log
  line naming the scope or the portal; ``hubhook replay`` runs it again once that is fixed;
- objects a big batch did not dispatch before its share of the job timeout (``batching.overdue``),
  or once it ran its slice while another portal waits (``batching.yields``): a new job at the head of
  its portal's lane (of the queue without lanes), the attempt count unchanged (counted as rescheduled).

Parked work is a normal delivery job in RQ's failed-job registry, the dead-letter registry.
Everything a batch hands on is written in one MULTI together with the end of its claims
(``batching.finish``): the work moves or it stays, never both, never neither.
"""
from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from rq import Queue, Retry, get_current_job
from rq.job import Job
from rq.job_lifecycle import record_job_failure

from jobs.delivery import batching
from jobs.delivery.batching import Batch
from jobs.delivery.fetching import ObjectChanges
from webhook_service import lanes
from webhook_service.config import Config
from webhook_service.errors import HubSpotAPIError, MissingScopes, NoToken, RateLimited
from webhook_service.keys import RUN_HANDLER
from webhook_service.receiver.intake import DEAD_LETTER_TTL, DELIVERY_RETRY_INTERVALS, delivery_job

log = logging.getLogger("hubhook.worker")
MAX_ATTEMPTS = len(DELIVERY_RETRY_INTERVALS) + 1   # the first try, then one after each interval


def backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` of work HubSpot failed: exponential-ish, +-25% jitter."""
    return DELIVERY_RETRY_INTERVALS[min(attempt, len(DELIVERY_RETRY_INTERVALS) - 1)] * random.uniform(0.75, 1.25)


def rate_wait(exc: RateLimited) -> float:
    """The wait a rate limit asked for, spread by up to 10% (at least 0.2 s) so retries do not collide."""
    return exc.retry_after + random.uniform(0.2, max(0.2, exc.retry_after * 0.1))


def parks(exc: HubSpotAPIError) -> bool:
    """Errors no retry can fix: the app lacks a scope, or has no token for the portal."""
    return isinstance(exc, (MissingScopes, NoToken))


def reason(exc: HubSpotAPIError, portal: int | None = None, object_type: str | None = None) -> str:
    """One line for the log and the dead letter, saying what to do."""
    where = f"{object_type or 'objects'} of portal {portal}" if portal is not None else "this work"
    if isinstance(exc, MissingScopes):
        scopes = ", ".join(exc.scopes) or "(HubSpot named none)"
        return (f"HubSpot refused to read {where}: the app is missing scope(s) {scopes}; grant them, "
                "then `hubhook replay`")
    if isinstance(exc, NoToken):
        return str(exc)
    return f"HubSpot kept failing on {where}: {exc}"


def settle(pipe, queue: Queue, config: Config, batch: Batch, failed: list[tuple[ObjectChanges, HubSpotAPIError]],
           deferred: Sequence[ObjectChanges] = ()) -> dict[str, int]:
    """Hand on the events of ``failed`` and ``deferred`` objects and finish the batch's claims, all on
    ``pipe`` (a MULTI the caller executes). Returns how many events were rescheduled (deferred ones
    included, so the pending count stays right), parked and deferred."""
    origin_of = {id(event): origin for origin in batch.origins for event in origin.events}
    later: dict[int, list[dict]] = defaultdict(list)
    for item in deferred:
        for change in item.changes:
            later[id(origin_of[id(change)])].append(change)
    for origin in reversed([o for o in batch.origins if id(o) in later]):  # at the head, in their order
        job = delivery_job(queue, later[id(origin)], source=batch.source, job_timeout=config.job_timeout,
                           attempt=origin.attempt)
        lanes.push_front(pipe, queue, job, lanes.portal_of(later[id(origin)]), lanes_on=config.fair_slice > 0)
    grouped: dict[tuple[int, int], list[dict]] = defaultdict(list)
    errors: dict[int, tuple[HubSpotAPIError, ObjectChanges]] = {}
    for item, exc in failed:
        errors[id(exc)] = (exc, item)
        for change in item.changes:
            grouped[(id(origin_of[id(change)]), id(exc))].append(change)
    origins = {id(o): o for o in batch.origins}
    counts = {"rescheduled": sum(map(len, later.values())), "parked": 0}
    lines: dict[str, int] = defaultdict(int)
    for (origin_key, exc_key), events in grouped.items():
        origin, (exc, item) = origins[origin_key], errors[exc_key]
        source = batch.source
        if isinstance(exc, RateLimited):
            wait = rate_wait(exc)
            _schedule(pipe, queue, config, events, source, origin.attempt, wait)
            lines[f"HubSpot rate limit ({exc.policy or '429'}) for portal {item.portal_id}: rescheduled in "
                  f"{exc.retry_after:.1f} s"] += len(events)
            counts["rescheduled"] += len(events)
        elif parks(exc) or origin.attempt + 1 >= MAX_ATTEMPTS:
            text = reason(exc, item.portal_id, item.object_type)
            park_delivery(pipe, queue, config, events, source, text)
            lines[f"parked in the dead-letter registry: {text}"] += len(events)
            counts["parked"] += len(events)
        else:
            wait = backoff(origin.attempt)
            _schedule(pipe, queue, config, events, source, origin.attempt + 1, wait)
            lines[f"{reason(exc, item.portal_id, item.object_type)}; rescheduled in {wait:.0f} s "
                  f"(attempt {origin.attempt + 2} of {MAX_ATTEMPTS})"] += len(events)
            counts["rescheduled"] += len(events)
    batching.finish(pipe, batch)
    for line, n in lines.items():
        (log.info if line.startswith("HubSpot rate limit") else log.warning)("%d events %s", n, line)
    if later:
        counts["deferred"] = sum(map(len, later.values()))
        log.info("%d events of %d objects not dispatched within %.0f s of the job timeout: handed to a new job",
                 counts["deferred"], len(deferred), config.job_timeout * batching.DISPATCH_SHARE)
    return counts


def _schedule(pipe, queue: Queue, config: Config, events: list[dict], source: str, attempt: int,
              wait: float) -> Job:
    job = delivery_job(queue, events, source=source, job_timeout=config.job_timeout, attempt=attempt)
    return queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=wait), pipeline=pipe)


def park_delivery(pipe, queue: Queue, config: Config, events: list[dict], source: str, why: str) -> Job:
    """A delivery job holding ``events`` straight into the dead-letter registry (replay starts afresh)."""
    job = delivery_job(queue, events, source=source, job_timeout=config.job_timeout)
    job.meta["parked"] = why[:300]
    return _park(pipe, job, why)


def _park(pipe, job: Job, why: str) -> Job:
    job.ended_at = datetime.now(UTC)
    job.save(pipeline=pipe)
    record_job_failure(job, why, pipe)
    return job


# -- handler retries --------------------------------------------------------------------------------
def handler_job(queue: Queue, config: Config, name: str, changes: list[dict], source: str, label: str,
                retry: Retry | None) -> Job:
    """A ``run_handler`` job: one handler, one object, fresh data."""
    return queue.create_job(RUN_HANDLER, args=[name, changes, source], retry=retry,
                            description=f"retry {name} for {label}", meta={"handler": name, "object": label},
                            timeout=config.job_timeout, result_ttl=0, failure_ttl=DEAD_LETTER_TTL)


def retry_handler(queue: Queue, config: Config, name: str, item: ObjectChanges, source: str,
                  exc: Exception) -> float | None:
    """A handler failed inside a delivery job: schedule it alone (after HubSpot's wait for a rate
    limit, which spends no retry), or park it when retrying cannot help. Returns the wait before the
    retry in seconds, or None when it was parked."""
    label = f"{item.object_type}:{item.object_id}"
    if isinstance(exc, HubSpotAPIError) and parks(exc):
        with queue.connection.pipeline() as pipe:
            _park(pipe, handler_job(queue, config, name, item.changes, source, label, None),
                  reason(exc, item.portal_id))
            pipe.execute()
        return None
    first, *rest = config.handler_retries or (0,)
    wait = rate_wait(exc) if isinstance(exc, RateLimited) else first
    retry = Retry(max=len(rest), interval=list(rest)) if rest else None
    job = handler_job(queue, config, name, item.changes, source, label, retry)
    queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=wait))
    return wait


def defer_running_handler(queue: Queue, config: Config, name: str, changes: list[dict], source: str,
                          item: ObjectChanges, exc: HubSpotAPIError) -> dict:
    """Inside a ``run_handler`` job: a rate limit reschedules it with the retries it has left; a missing
    scope or token parks it. The running job then ends normally."""
    label = f"{item.object_type}:{item.object_id}"
    if parks(exc):
        with queue.connection.pipeline() as pipe:
            _park(pipe, handler_job(queue, config, name, changes, source, label, None), reason(exc, item.portal_id))
            pipe.execute()
        log.warning("handler %s parked for %s: %s", name, label, reason(exc, item.portal_id))
        return {"handler": name, "object": label, "parked": True}
    current = get_current_job()
    left = (current.retries_left or 0) if current else 0
    intervals = list(current.retry_intervals or []) if current else []
    rest = intervals[max(len(intervals) - left, 0):] if left else []
    retry = Retry(max=left, interval=rest or [0]) if left else None
    job = handler_job(queue, config, name, changes, source, label, retry)
    wait = rate_wait(exc) if isinstance(exc, RateLimited) else backoff(0)
    queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=wait))
    log.info("handler %s for %s rate limited (%s): rescheduled in %.1f s", name, label,
             getattr(exc, "policy", None) or "429", wait)
    return {"handler": name, "object": label, "rescheduled": round(wait, 1)}
