"""One pass over one stream: walk search from the cursor, deliver each page once, move the cursor.

Per page, in this order: drop versions already delivered (seen set) and, for reconciled webhook
types, versions a webhook already delivered; renew the leader lock (the fence: a process that lost
leadership stops before it enqueues anything); enqueue the rest as one job through intake (the same
job webhooks become); then commit — mark the page seen and move the cursor forward — in one Redis
script. A crash anywhere before the commit re-reads the page on the next pass.

Each pass reads from ``position - lookback`` (HubSpot's search lags writes by seconds:
https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm), never below the
cursor's floor (the moment the poller first started: "begins at now").
A 429 or 5xx waits and re-sends the same request, so the walk resumes where it was instead of
re-reading the whole lookback window. Searches are paced evenly just under the search budget.
"""
from __future__ import annotations

import logging
import time
from typing import Protocol

from jobs.poller.cursor import Cursor
from jobs.poller.polled_types import Stream, poll_event
from jobs.poller.property_changes import Marks, collect
from jobs.poller.reconcile import delivered_by_webhook
from jobs.poller.search_walk import Page, Search, walk
from jobs.worker.context import Context
from webhook_service.errors import RateLimited, TransientAPIError
from webhook_service.receiver.intake import enqueue_delivery

log = logging.getLogger("hubhook.poller")
#: In-pass retries of one search request before the pass gives up and is rescheduled.
SEARCH_ATTEMPTS = 6
TRANSIENT_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)
#: The walk spaces its own searches evenly, 2 % under the search budget, instead of sending bursts of 5
#: the shared limiter would admit at once: HubSpot counts a request when it arrives, so a burst whose
#: first request travelled slower than the next burst's is refused (429, a lost second). Measured by
#: bench/poller.py (20,000 records): bursts reached 775 records/s, even spacing 930/s, no 429.
PACING = 1.02
POLL_DEDUPE_TTL = 3600


class Guard(Protocol):
    """What a pass needs from leadership: renew-or-raise, and a wait that keeps the lock."""

    def check(self) -> None: ...
    def sleep(self, seconds: float) -> None: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def resilient_search(ctx: Context, stream: Stream, guard: Guard) -> Search:
    """``client.search`` for this stream that renews leadership first and rides out 429s and 5xx."""
    client = ctx.client(priority="poll")
    portal = stream.portal or None
    spacing = PACING / max(1, ctx.config.search_limit)
    last = [0.0]

    def search(body: dict) -> dict:
        transient = 0
        for attempt in range(SEARCH_ATTEMPTS):
            guard.check()
            gap = last[0] + spacing - time.monotonic()
            if gap > 0:
                guard.sleep(gap)
            last[0] = time.monotonic()
            try:
                return client.search(stream.otype.api_name, body, portal_id=portal)
            except RateLimited as exc:
                if attempt == SEARCH_ATTEMPTS - 1:
                    raise
                log.info("search %s rate limited (%s): waiting %.1fs, then resuming", stream.name,
                         exc.policy or "429", exc.retry_after)
                guard.sleep(exc.retry_after)
            except TransientAPIError as exc:
                if attempt == SEARCH_ATTEMPTS - 1:
                    raise
                wait = TRANSIENT_BACKOFF[min(transient, len(TRANSIENT_BACKOFF) - 1)]
                transient += 1
                log.warning("search %s failed (%s): retrying in %.0fs", stream.name, exc, wait)
                guard.sleep(wait)
        raise AssertionError("unreachable")
    return search


def deliver_page(ctx: Context, stream: Stream, cursor: Cursor, page: Page, *, previous_ms: int,
                 lookback_ms: int, guard: Guard, keep_from_ms: int | None = None,
                 history_from_ms: int | None = None) -> int:
    """Enqueue the page's undelivered versions as one job, then commit; return how many were enqueued.

    The seen set is trimmed below what this walk can still re-read, and never above ``keep_from_ms``
    (what a backfill running in between still needs). With ``history_from_ms`` (the live walk of a
    type with watched properties), the same job also carries a propertyChange event per change of a
    watched property since then (``property_changes``), placed before the polled events so that, at
    equal times, a record's polled event stays its latest change.
    """
    if not page.results:
        return 0
    versions = page.versions(stream.prop)
    fresh = [i for i, unseen in enumerate(cursor.unseen(versions)) if unseen]
    keep = fresh
    if stream.reconcile and fresh:
        dropped = delivered_by_webhook(ctx.redis, stream.portal, stream.name, [versions[i] for i in fresh])
        keep = [i for i, gone in zip(fresh, dropped) if not gone]
    events = [poll_event(stream, page.results[i], versions[i][1], previous_ms) for i in keep]
    position = max(ms for _, ms in versions)
    floor = min(page.lower_ms, position - lookback_ms, *([] if keep_from_ms is None else [keep_from_ms]))
    changes: list[dict] = []
    marks = Marks(ctx.redis, stream.portal, stream.name)
    advanced: dict[str, int] = {}
    if history_from_ms is not None and stream.watched and keep:
        changes, advanced = collect(ctx.client(priority="poll"), marks, stream,
                                    [versions[i][0] for i in keep], history_from_ms)
    guard.check()
    if events or changes:
        enqueue(ctx, changes + events)
    if history_from_ms is not None and stream.watched:
        marks.advance(advanced, floor)
    cursor.commit([versions[i] for i in fresh], position, floor)
    return len(events)


def enqueue(ctx: Context, events: list[dict]) -> None:
    """One job through intake, like a webhook delivery. Intake's own dedupe is only a second net for
    polled events (the seen set is the first), so its keys live an hour, not the webhook's 48 h: a
    backfill of millions of records must not leave millions of keys behind for two days."""
    enqueue_delivery(ctx.redis, ctx.queue, events, source="poll", job_timeout=ctx.config.job_timeout,
                     dedupe_ttl=min(ctx.config.dedupe_ttl, POLL_DEDUPE_TTL), fair=ctx.config.fair_slice > 0)


def search_pass(ctx: Context, stream: Stream, guard: Guard) -> str:
    """Walk one stream from its cursor to now; return the outcome line stored for ``hubhook status``."""
    cursor = Cursor(ctx.redis, stream.portal, stream.name, "search")
    lookback_ms = int(ctx.config.poll_lookback * 1000)
    started = now_ms()
    state = cursor.start(started)
    position = state.position if state.position is not None else started
    # "Created since the last cursor" is judged against where the pass began, kept until it ends: a
    # pass cut short re-reads its last page with the same judgement, so intake sees the same events.
    previous = int(state.fields.get("pass_from") or position)
    cursor.set_fields(pass_from=previous)
    lower = max(position - lookback_ms, state.floor or 0)
    # Reconciliation stays one lookback behind now, so a webhook in flight lands (and is noted) first.
    upper = started - lookback_ms if stream.reconcile else None
    if upper is not None and upper <= lower:
        cursor.record("ok: nothing due yet", delivered=0)
        cursor.clear("pass_from")
        return "ok: nothing due yet"
    delivered = pages = 0
    keep_from = backfill_floor(ctx, stream, lookback_ms)
    for page in walk(resilient_search(ctx, stream, guard), stream.prop, lower, upper_ms=upper,
                     properties=(stream.created_prop,)):
        pages += 1
        count = deliver_page(ctx, stream, cursor, page, previous_ms=previous, lookback_ms=lookback_ms,
                             guard=guard, keep_from_ms=keep_from, history_from_ms=lower)
        delivered += count
    outcome = f"ok: {delivered} delivered from {pages} page(s) in {(now_ms() - started) / 1000:.1f}s"
    cursor.record(outcome, delivered=delivered)
    cursor.clear("pass_from")
    if delivered:
        log.info("%s: %s", stream.name, outcome)
    return outcome


def backfill_floor(ctx: Context, stream: Stream, lookback_ms: int) -> int | None:
    """While a backfill of this type is unfinished, the seen versions it may re-read (ties at its
    checkpoint) must survive the live walk's trimming: the lowest time to keep, else None."""
    state = Cursor(ctx.redis, stream.portal, stream.name, "backfill").load()
    if state.position is None or state.fields.get("done") == "1":
        return None
    return state.position - lookback_ms
