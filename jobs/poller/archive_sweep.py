"""Deletions of polled types: the archived sweep.

Search never shows archived records
(https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm), so a modified-date walk
cannot see a deletion. Every ``HUBHOOK_ARCHIVE_SWEEP_INTERVAL`` seconds the leader lists the type with
``archived=true`` (pages of 100, the list endpoint's maximum) and turns every record archived since
the last sweep into a ``<type>.deletion`` event. The list is ordered by id, not by time, so each
sweep reads the whole recycling bin (HubSpot keeps 90 days); its cursor is the latest ``archivedAt``
delivered, re-read with the same lookback as search and deduplicated by its own seen set.
"""
from __future__ import annotations

import logging

from jobs.poller.cursor import Cursor
from jobs.poller.polled_types import Stream, deletion_event
from jobs.poller.search_pass import Guard, enqueue, now_ms
from jobs.worker.context import Context
from webhook_service.timestamps import parse_ms

log = logging.getLogger("hubhook.poller")
LIST_LIMIT = 100


def archived_pages(ctx: Context, stream: Stream, guard: Guard):
    """Each page of the type's archived records, renewing leadership before every request."""
    client = ctx.client(priority="poll")
    path = client.objects_path(stream.otype.api_name)
    after: str | None = None
    while True:
        guard.check()
        params = {"archived": "true", "limit": LIST_LIMIT, **({"after": after} if after else {})}
        body = client.request("GET", path, portal_id=stream.portal or None, params=params).json()
        yield body.get("results") or []
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


def sweep(ctx: Context, stream: Stream, guard: Guard) -> str:
    """One archived sweep of one type; return the outcome line stored for ``hubhook status``."""
    cursor = Cursor(ctx.redis, stream.portal, stream.name, "archive")
    lookback_ms = int(ctx.config.poll_lookback * 1000)
    state = cursor.start(now_ms())
    lower = max((state.position or 0) - lookback_ms, state.floor or 0)
    found = delivered = 0
    for results in archived_pages(ctx, stream, guard):
        found += len(results)
        gone = [(str(r["id"]), _archived_ms(r)) for r in results]
        recent = [v for v in gone if v[1] >= lower]
        fresh = [v for v, unseen in zip(recent, cursor.unseen(recent)) if unseen]
        if not fresh:
            continue
        guard.check()
        enqueue(ctx, [deletion_event(stream, i, ms) for i, ms in fresh])
        cursor.commit(fresh, max(ms for _, ms in fresh), lower)
        delivered += len(fresh)
    outcome = f"ok: {delivered} deletion(s) among {found} archived record(s)"
    cursor.record(outcome, delivered=delivered)
    if delivered:
        log.info("%s archived sweep: %s", stream.name, outcome)
    return outcome


def _archived_ms(record: dict) -> int:
    """When a record was archived: ``archivedAt``, else its last update (the archive is one)."""
    return parse_ms(record.get("archivedAt") or record.get("updatedAt") or 0)
