"""Reconciliation: poll webhook types slowly, and drop what a webhook already delivered.

HubSpot drops a webhook after about ten failed retries and never replays it
(https://developers.hubspot.com/docs/api-reference/error-handling), so with
``HUBHOOK_RECONCILE_INTERVAL`` set the poller also walks the webhook types at that slow pace. A
change the webhook path already handled must not reach the handlers a second time: the worker
records, per object, the latest ``occurredAt`` a webhook delivered (``note_webhook_changes``), and
the poller drops every polled version that is not newer than it (``delivered_by_webhook``).

Notes live in one sorted set per (portal, type): member = object id, score = the latest webhook
time (``ZADD GT`` keeps the maximum), trimmed by score to a few reconcile intervals. Webhooks carry
the real portal id while a private-app poller may not know its own (``HUBSPOT_PORTAL_ID`` unset, 0):
the portals webhooks came from are remembered, and a poller on portal 0 consults all of them.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from redis import Redis

from webhook_service import keys
from webhook_service.router import object_name

#: A webhook's occurredAt and the record's modified date are stamped by different parts of HubSpot;
#: a version modified at most this much after the webhook's change counts as that same change.
SLACK_MS = 1000
#: Notes are kept this many reconcile intervals (the poll walks a window about one interval wide).
KEEP_INTERVALS = 3
POLL_SOURCE = "HUBHOOK_POLL"


def notes_key(portal: int | str, object_type: str) -> str:
    return keys.poller_webhook_notes(portal, object_type)


PORTALS_KEY = keys.POLLER_WEBHOOK_PORTALS


def note_webhook_changes(redis: Redis, events: Iterable[dict],
                         reconcile_interval: float | None = None) -> int:
    """Remember, per object, the latest occurredAt a webhook delivered; return how many were noted.

    Call it from the worker for webhook deliveries. A no-op when reconciliation is off
    (``reconcile_interval`` falsy) and for events the poller made itself.
    """
    if not reconcile_interval:
        return 0
    latest: dict[tuple[int, str], dict[str, int]] = {}
    for event in events:
        if event.get("changeSource") == POLL_SOURCE or event.get("objectId") is None:
            continue
        object_type = object_name(event)
        if object_type is None:  # the worker passes routable events only (jobs.delivery.job._routable)
            raise ValueError(f"event {event['objectId']} has no well-formed object type: drop it before noting it")
        scope = (int(event.get("portalId") or 0), object_type)
        notes = latest.setdefault(scope, {})
        object_id, at = str(event["objectId"]), int(event.get("occurredAt") or 0)
        notes[object_id] = max(at, notes.get(object_id, 0))
    if not latest:
        return 0
    keep = KEEP_INTERVALS * float(reconcile_interval)
    horizon_ms = int((time.time() - keep) * 1000)
    with redis.pipeline(transaction=False) as pipe:
        for (portal, object_type), notes in latest.items():
            name = notes_key(portal, object_type)
            pipe.zadd(name, notes, gt=True)
            pipe.zremrangebyscore(name, "-inf", f"({horizon_ms}")
            pipe.expire(name, int(keep) + 60)
            pipe.sadd(PORTALS_KEY, portal)
        pipe.expire(PORTALS_KEY, int(keep) + 60)
        pipe.execute()
    return sum(len(n) for n in latest.values())


def delivered_by_webhook(redis: Redis, portal: int, object_type: str,
                         versions: Sequence[tuple[str, int]]) -> list[bool]:
    """For each (id, modified ms): True when a webhook already delivered that change (or a later one)."""
    if not versions:
        return []
    portals = [portal]
    if not portal:
        portals += [int(p) for p in redis.smembers(PORTALS_KEY) if int(p) != portal]
    ids = [object_id for object_id, _ in versions]
    with redis.pipeline(transaction=False) as pipe:
        for p in portals:
            pipe.zmscore(notes_key(p, object_type), ids)
        answers = pipe.execute()
    best = [max((a[i] for a in answers if a[i] is not None), default=None) for i in range(len(ids))]
    return [b is not None and b + SLACK_MS >= ms for b, (_, ms) in zip(best, versions)]


#: KEYS: one search cursor. ARGV: the time to walk again from (ms). Moves ``position`` and ``floor`` back
#: to it, never forward, in one step, so a pass that commits meanwhile cannot undo the rewind halfway.
_REWIND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local since = tonumber(ARGV[1])
for _, name in ipairs({'position', 'floor'}) do
  local current = tonumber(redis.call('HGET', KEYS[1], name) or '-1')
  if current < 0 or current > since then redis.call('HSET', KEYS[1], name, ARGV[1]) end
end
return 1
"""


def rewind_search(redis: Redis, since_ms: int) -> int:
    """Make every search cursor walk again from ``since_ms``: the search reconcile of a gap another source
    (the Webhooks Journal, whose offset expired) could not cover. Changes a webhook or the journal already
    delivered are dropped there as usual (``delivered_by_webhook``). Returns how many cursors moved back."""
    script = redis.register_script(_REWIND)
    moved = 0
    for name in redis.scan_iter(match=keys.POLLER_CURSORS, count=500):
        text = name.decode() if isinstance(name, bytes) else str(name)
        if text.endswith(":search"):
            moved += int(script(keys=[text], args=[int(since_ms)]))
    return moved
