"""``hubhook mirror backfill``: load every record that exists, through the list endpoints.

Pages of 100 records by ascending id (``GET /crm/v3/objects/{type}``, whose ``paging.next.after`` is
the next page's first id: https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/guide),
each page's associations of the configured types in one v4 batch read per type, each page written
like one job's batch (one round trip, the same version guard). After each page the cursor is saved
in Redis, so a killed backfill resumes where it stopped. Every call draws on the poll share of the
shared rate budget (HUBHOOK_POLL_SHARE), so webhook work keeps its priority while this runs, and a
record changed meanwhile is safe either way: the newer HubSpot version wins the row.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from jobs.mirror import writer
from jobs.mirror.handler import Mirror
from jobs.mirror.layout import MirroredType, lookup, mirrored_types
from jobs.worker.context import Context
from webhook_service import keys, objects
from webhook_service.config import Config

log = logging.getLogger("hubhook.mirror")
PAGE = 100


@dataclass
class Progress:
    """What the caller shows: a type starts (with HubSpot's total, when it said), a page was written."""

    start: Callable[[MirroredType, int | None, bool], None] = lambda mirrored, total, resumed: None
    page: Callable[[MirroredType, int], None] = lambda mirrored, records: None


def backfill(config: Config, type_names: list[str] | None = None, *, portal_id: int, restart: bool = False,
             progress: Progress | None = None) -> dict[str, int]:
    """Load every record of ``type_names`` (default: every mirrored type) of one portal; returns records
    written per type."""
    progress = progress or Progress()
    ctx = Context(config)
    client = ctx.client("poll")
    mirror = Mirror(config, ctx.redis, lambda: client)
    mirror.prepare()
    types = [lookup(config, name) for name in type_names] if type_names else mirrored_types(config)
    done: dict[str, int] = {}
    try:
        for mirrored in types:
            done[mirrored.api_name] = _walk(ctx, client, mirror, mirrored, portal_id, restart, progress)
    finally:
        mirror.db.close()
    return done


def _walk(ctx: Context, client, mirror: Mirror, mirrored: MirroredType, portal_id: int, restart: bool,
          progress: Progress) -> int:
    cursor = keys.mirror_backfill_cursor(portal_id, mirrored.api_name)
    if restart:
        ctx.redis.delete(cursor)
    saved = ctx.redis.get(cursor)
    after = saved.decode() if isinstance(saved, bytes) else saved
    progress.start(mirrored, _total(client, mirrored, portal_id), after is not None)
    names = sorted(mirror.properties[mirrored.api_name])
    pairs = mirror.pairs.get(mirrored.api_name, ())
    written = 0
    while True:
        fetched_at = writer.now_iso()  # before the read: a deletion processed meanwhile still wins the row
        page = client.list_page(mirrored.api_name, names, after=after, limit=PAGE, portal_id=portal_id or None)
        records = page.get("results") or []
        writes = writer.Writes(mirrored)
        for record in records:
            record_id = writes.upsert(portal_id, record, fetched_at)
            merged = (record.get("properties") or {}).get("hs_merged_object_ids") or ""
            for loser in (i for i in merged.split(";") if i.strip().isdigit() and int(i) != record_id):
                writes.merged(portal_id, loser, record_id, fetched_at)
        ids = [str(r["id"]) for r in records]
        for to_type in pairs if ids else ():
            types: dict[str, dict[str, list[dict]]] = {}
            found = client.batch_associations(mirrored.api_name, objects.lookup(to_type).api_name, ids,
                                              portal_id=portal_id or None, types=types)
            for object_id in ids:
                writes.replace_links(portal_id, object_id, to_type, [
                    (int(to_id), int(kind.get("typeId") or 0), kind.get("category"), kind.get("label"))
                    for to_id in found.get(object_id, []) for kind in (types.get(object_id, {}).get(to_id) or [{}])])
        writer.send(mirror.db, mirror.schema, writes)
        written += len(records)
        progress.page(mirrored, len(records))
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            ctx.redis.delete(cursor)
            return written
        ctx.redis.set(cursor, str(after))


def _total(client, mirrored: MirroredType, portal_id: int) -> int | None:
    """How many records HubSpot has (one search call), for the progress bar; None when it cannot say."""
    try:
        return int(client.search(mirrored.api_name, {"limit": 1, "properties": ["hs_object_id"]},
                                 portal_id=portal_id or None).get("total"))
    except Exception:  # a progress bar without a length is fine
        return None
