"""``<type>.propertyChange`` events for polled types, one per change of a watched property.

CRM search says that a record changed, not what changed, and returns no property history. So for the
records a search page found changed (its fresh versions), the poller reads the *watched* properties
(those some ``property=`` handler of the type names; ``to=``/``from_=`` imply ``property=``) with
``propertiesWithHistory`` in batch reads, and turns every history entry newer than what it already
handled into one event, as a webhook subscription would send one per change: ``propertyName``,
``propertyValue``, ``occurredAt`` (the entry's timestamp), ``changeSource``/``sourceId`` (the entry's
``sourceType``/``sourceId``, so HUBHOOK_IGNORE_SOURCES suppresses a handler's own write-backs here too),
and ``previousValue``, the entry before it in the history, which ``from_=`` compares.

Cost: one batch read per 50 changed records of a type that has watched properties (HubSpot refuses
more than 50 inputs in a batch read that asks for ``propertiesWithHistory``, answering "The maximum
number of inputs supported in a batch request for property histories is 50"), drawn from the poller's
share of the rate budget; nothing for types without such handlers.

"Newer than what it already handled": per object, the newest history time already turned into events
(the *mark*, a sorted set per (portal, type)), else the pass's lower bound (changes before the
poller first started, or before the window it re-reads, were handled by an earlier pass). Marks are
trimmed with the seen set (``jobs.poller.cursor``): below the lowest time any later pass can read,
where the pass's lower bound takes over, so the set holds about one lookback window of objects.
Events are deterministic (same entry, same event), so re-polling a window after a crash or restart
produces the same events, which the marks, then intake's dedupe, drop.

The choices where HubSpot's webhooks give no answer:
- Several changes of one property between passes: one event per history entry, oldest first, like
  webhooks; the worker still calls each handler once per object per job, with all of them in
  ``event.changes``, and ``from_=`` sees each transition (A -> B -> C passes ``from_="B"``).
- A record created in the window: its initial values count as changes (``previousValue`` None), so
  ``to="closed"`` fires for a ticket created closed; ``from_=`` never matches an initial value.
- Deleted records (absent from the read) and merged-away ids (the read answers with the surviving
  record, whose own id the search finds) produce no property events; the deletion sweep and the
  surviving record's own version cover them.
- History truncation (HubSpot keeps a limited number of values per property): when the oldest value
  returned is itself newer than the mark, older changes are gone; the events for what remains are
  emitted and the oldest one's ``previousValue`` is None (unknown), so ``from_=`` does not match it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from redis import Redis

from jobs.hubspot.client import HubSpotClient
from jobs.poller.polled_types import Stream
from jobs.poller.reconcile import POLL_SOURCE
from webhook_service import keys
from webhook_service.errors import HubSpotAPIError
from webhook_service.filters import HISTORY_ORIGIN, ORIGIN_FIELD, PREVIOUS_FIELD
from webhook_service.timestamps import parse_ms_or_none


class HistoryReadFailed(RuntimeError):
    """HubSpot refused a history read the search before it implies it should answer: the page is not
    committed, and the poller retries it with backoff (a 400 on a search would stop polling the type)."""


class Marks:
    """Per object of one (portal, type): the newest history time already turned into events."""

    def __init__(self, redis: Redis, portal: int, object_type: str) -> None:
        self.redis = redis
        self.key = keys.poller_property_marks(portal, object_type)

    def get(self, object_ids: Sequence[str]) -> dict[str, int | None]:
        if not object_ids:
            return {}
        scores = self.redis.zmscore(self.key, list(object_ids))
        return {i: None if s is None else int(s) for i, s in zip(object_ids, scores)}

    def advance(self, marks: Mapping[str, int], trim_below_ms: int) -> None:
        """Raise the marks (never lower one: ``ZADD GT``) and forget those no later pass can need."""
        with self.redis.pipeline(transaction=True) as pipe:
            if marks:
                pipe.zadd(self.key, dict(marks), gt=True)
            pipe.zremrangebyscore(self.key, "-inf", f"({trim_below_ms}")
            pipe.execute()


def history_changes(stream: Stream, object_id: str, record: Mapping | None, after_ms: int) -> list[dict]:
    """The propertyChange events of one record's watched properties newer than ``after_ms``, oldest first.

    Pure: the record as the batch read returned it (``propertiesWithHistory`` newest first, as HubSpot
    sends it; sorted again here rather than trusted). None (deleted) or another id (merged away) -> [].
    """
    if record is None or str(record.get("id")) != str(object_id):
        return []
    histories = record.get("propertiesWithHistory") or {}
    events = []
    for name in stream.watched:
        timed = [(ms, entry) for entry in histories.get(name) or () if isinstance(entry, Mapping)
                 and (ms := parse_ms_or_none(entry.get("timestamp"))) is not None]
        timed.sort(key=lambda pair: pair[0], reverse=True)
        for index, (ms, entry) in enumerate(timed):
            if ms <= after_ms:
                break
            previous = timed[index + 1][1].get("value") if index + 1 < len(timed) else None
            events.append(_event(stream, object_id, name, entry, ms, previous))
    events.sort(key=lambda e: (e["occurredAt"], e["propertyName"]))
    return events


def _event(stream: Stream, object_id: str, name: str, entry: Mapping, at_ms: int, previous: str | None) -> dict:
    event = {"subscriptionType": f"{stream.name}.propertyChange", "objectId": int(object_id),
             "portalId": stream.portal, "occurredAt": at_ms, "eventId": at_ms, "subscriptionId": 0,
             "attemptNumber": 0, "propertyName": name, "propertyValue": entry.get("value") or "",
             PREVIOUS_FIELD: previous, "changeSource": entry.get("sourceType") or POLL_SOURCE,
             "objectTypeId": stream.otype.type_id, ORIGIN_FIELD: HISTORY_ORIGIN}
    if entry.get("sourceId"):
        event["sourceId"] = str(entry["sourceId"])
    return event


def collect(client: HubSpotClient, marks: Marks, stream: Stream, object_ids: Iterable[str],
            floor_ms: int) -> tuple[list[dict], dict[str, int]]:
    """Read the watched properties' histories of ``object_ids`` (50 a call) and return the events newer
    than each object's mark (or ``floor_ms``), with the marks to store once they are enqueued."""
    ids = list(dict.fromkeys(str(i) for i in object_ids))
    if not ids or not stream.watched:
        return [], {}
    try:
        records = client.batch_read(stream.otype.api_name, ids, list(stream.watched),
                                    portal_id=stream.portal or None, history=stream.watched)
    except HubSpotAPIError as exc:
        if exc.status in (400, 404):  # not "HubSpot does not know this type" (the search said it does)
            raise HistoryReadFailed(f"reading the history of {', '.join(stream.watched)} failed: {exc}") from exc
        raise
    known = marks.get(ids)
    events: list[dict] = []
    advanced: dict[str, int] = {}
    for object_id in ids:
        after = max(known.get(object_id) or floor_ms, floor_ms)
        found = history_changes(stream, object_id, records.get(object_id), after)
        if found:
            events += found
            advanced[object_id] = max(e["occurredAt"] for e in found)
    return events, advanced
