"""Everything hubhook assumes about the Webhooks Journal's wire format, in one module.

HubSpot documents the journal's endpoints and the pointer they answer with, ``{url, expiresAt,
currentOffset}`` (https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/journal-entries/guide),
but publishes no schema for the file behind ``url`` nor for its events, and no mapping to the push
webhooks' ``subscriptionType``. What is read here comes from clients that read the live journal, and each
guess is tolerant: a field that is missing or of another type is counted and skipped, never a crash.

Assumed (not documented by HubSpot):

- a file is one JSON object ``{offset, journalEvents: [...], publishedAt}``; JSON Lines (one event per
  line) and a bare list are accepted too, and gzip whether or not ``Content-Encoding`` says so;
- an event has ``type`` (``crmObject`` or ``association``), ``portalId``, ``occurredAt`` (an ISO-8601
  string or epoch milliseconds, as a number or a string), ``action``, ``objectTypeId``, ``objectId``;
  ``propertyChanges`` on an UPDATE maps property names to new values (a list of ``{propertyName,
  propertyValue}`` is read too); MERGE carries ``mergedObjectIds``; associations carry ``fromObjectTypeId``,
  ``fromObjectId``, ``toObjectTypeId``, ``toObjectId``, ``associationTypeId``, ``associationCategory``,
  ``isPrimary``;
- ``action`` + ``objectTypeId`` stand for ``subscriptionType``: CREATE is ``<type>.creation``, UPDATE one
  ``<type>.propertyChange`` per property, DELETE ``.deletion``, MERGE ``.merge``, RESTORE ``.restore``,
  ASSOCIATION_ADDED/REMOVED ``.associationChange`` on the "from" type; the classic names (``deal.``) for
  the types HubSpot sends classic webhooks for, ``object.`` with ``objectTypeId`` for the others, exactly
  as the push webhooks of the same change would be spelled, so both reach the same handlers;
- an expired or unknown offset answers some 4xx on ``offset/{offset}/next`` (the status is not documented).
"""
from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from webhook_service import objects

#: The journal's API, relative to ``HUBSPOT_API_BASE_URL``; ``journal`` reads every install of the app.
JOURNAL = "/webhooks-journal/journal/{version}"
SUBSCRIPTIONS = "/webhooks-journal/subscriptions/{version}"
#: The first dated version that has the journal: older configured versions read it at this one.
FIRST_VERSION = "2026-03"
#: Client-credentials scopes the reader asks for (https://developers.hubspot.com/docs/api-reference/latest/
#: webhooks-journal/guide); the object scopes (crm.objects.deals.read, ...) are the app's own.
READ_SCOPES = ("developer.webhooks_journal.read",)
SUBSCRIPTION_SCOPES = ("developer.webhooks_journal.subscriptions.read",
                       "developer.webhooks_journal.subscriptions.write")
#: Object types HubSpot sends classic (``deal.creation``) push webhooks for; every other type is ``object.*``
#: (https://developers.hubspot.com/changelog/public-beta-generic-webhook-subscriptions).
CLASSIC = frozenset({"contact", "company", "deal", "ticket", "product", "line_item"})
#: Journal action -> the push webhook's action.
ACTIONS = {"CREATE": "creation", "UPDATE": "propertyChange", "DELETE": "deletion", "MERGE": "merge",
           "RESTORE": "restore", "ASSOCIATION_ADDED": "associationChange", "ASSOCIATION_REMOVED": "associationChange"}
#: And back, for subscriptions made from handlers' patterns.
JOURNAL_ACTIONS = {"creation": ("CREATE",), "propertyChange": ("UPDATE",), "deletion": ("DELETE",),
                   "merge": ("MERGE",), "restore": ("RESTORE",),
                   "associationChange": ("ASSOCIATION_ADDED", "ASSOCIATION_REMOVED")}
#: Fields read from an event; any other is counted once per file as an unknown field (and ignored).
KNOWN_FIELDS = frozenset({
    "type", "portalId", "occurredAt", "action", "objectTypeId", "objectId", "propertyChanges", "mergedObjectIds",
    "newObjectId", "primaryObjectId", "fromObjectTypeId", "fromObjectId", "toObjectTypeId", "toObjectId",
    "associationTypeId", "associationCategory", "isPrimary", "id", "eventId", "appId", "changeSource", "sourceId",
})
#: At most this many distinct unknown names are counted by name; the rest as "other" (bounded metrics).
_MAX_NAMES = 50


class MalformedFile(ValueError):
    """The file behind a pointer is not a journal file: logged, counted, retried, then skipped."""


@dataclass(frozen=True)
class Pointer:
    """Where one journal file is: its offset and its pre-signed download URL (valid until ``expires_at``)."""

    offset: str
    url: str
    expires_at: str | None = None


@dataclass
class Mapped:
    """What one file became: webhook-shaped events, and counts of what was skipped or unknown, by reason."""

    events: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    read: int = 0
    newest_ms: int | None = None


def pointers(body: Any) -> list[Pointer]:
    """The pointers of a single answer (``earliest``, ``next``) or a batch one (``results``)."""
    items = body.get("results") if isinstance(body, dict) and "results" in body else [body]
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("currentOffset"), str) and isinstance(item.get("url"), str):
            found.append(Pointer(item["currentOffset"], item["url"], item.get("expiresAt")))
    return found


def decode_file(raw: bytes) -> list[Any]:
    """The events of a downloaded file. Raises MalformedFile when it is no journal file at all."""
    if raw[:2] == b"\x1f\x8b":   # gzip, whatever Content-Encoding said (requests undoes a declared one)
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise MalformedFile(f"bad gzip: {exc}") from None
    try:
        body = json.loads(raw)
    except ValueError:
        try:   # JSON Lines: one event per line
            body = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except ValueError as exc:
            raise MalformedFile(f"not JSON: {str(exc)[:80]}") from None
    if isinstance(body, dict):
        events = body.get("journalEvents", body.get("events"))
        if not isinstance(events, list):
            raise MalformedFile("a JSON object without a journalEvents list")
        return events
    if isinstance(body, list):
        return body
    raise MalformedFile(f"JSON {type(body).__name__}, not an object")


def occurred_ms(value: Any) -> int | None:
    """``occurredAt`` as epoch milliseconds: an ISO-8601 string, or milliseconds as a number or a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


def map_file(raw_events: list[Any], unknown_names: set[str] | None = None) -> Mapped:
    """Webhook-shaped events (``subscriptionType`` and all) for a file's journal events; see the module docstring."""
    out = Mapped()
    names = unknown_names if unknown_names is not None else set()
    for raw in raw_events:
        out.read += 1
        if not isinstance(raw, dict):
            out.skipped["malformed_event"] += 1
            continue
        for name in raw.keys() - KNOWN_FIELDS:
            label = name if name in names or len(names) < _MAX_NAMES else "other"
            names.add(label)
            out.skipped[f"field:{label}"] += 1
        mapped, reason = map_event(raw)
        if reason:
            out.skipped[reason] += 1
        out.events.extend(mapped)
        for event in mapped:
            if out.newest_ms is None or event["occurredAt"] > out.newest_ms:
                out.newest_ms = event["occurredAt"]
    return out


def map_event(raw: dict) -> tuple[list[dict], str | None]:
    """One journal event as the push webhook events of the same change, or ([], why it was skipped)."""
    action = raw.get("action")
    kind = ACTIONS.get(action) if isinstance(action, str) else None
    if kind is None:
        return [], f"action:{str(action)[:40]}"
    at = occurred_ms(raw.get("occurredAt"))
    portal = raw.get("portalId")
    if at is None or not isinstance(portal, int) or isinstance(portal, bool):
        return [], "missing:occurredAt/portalId"
    association = kind == "associationChange"
    type_id: Any = raw.get("fromObjectTypeId" if association else "objectTypeId")
    object_id: Any = raw.get("fromObjectId" if association else "objectId")
    if not isinstance(type_id, str) or not objects.TYPE_ID.fullmatch(type_id) or not _is_id(object_id):
        return [], f"type:{str(raw.get('type'))[:40]}" if raw.get("type") not in ("crmObject", "association") \
            else "missing:objectTypeId/objectId"
    name = objects.BY_TYPE_ID[type_id].name if type_id in objects.BY_TYPE_ID else None
    base: dict[str, Any] = {"portalId": portal, "occurredAt": at, "objectId": int(object_id)}
    if name in CLASSIC:
        base["subscriptionType"] = f"{name}.{kind}"
    else:
        base.update(subscriptionType=f"{objects.GENERIC_PREFIX}.{kind}", objectTypeId=type_id)
    if kind == "propertyChange":
        changes = _property_changes(raw.get("propertyChanges"))
        if changes is None:
            return [], "missing:propertyChanges"
        return [{**base, "propertyName": prop, "propertyValue": "" if value is None else str(value)}
                for prop, value in changes], None
    if association:
        to_id: Any = raw.get("toObjectId")
        if not _is_id(to_id):
            return [], "missing:toObjectId"
        base.update(fromObjectId=int(object_id), toObjectId=int(to_id),
                    associationRemoved=action == "ASSOCIATION_REMOVED",
                    isPrimaryAssociation=bool(raw.get("isPrimary")))
        if isinstance(raw.get("toObjectTypeId"), str):
            base["toObjectTypeId"] = raw["toObjectTypeId"]
        if raw.get("associationTypeId") is not None:
            base["associationTypeId"] = raw["associationTypeId"]
        return [base], None
    if kind == "merge":
        merged = raw.get("mergedObjectIds")
        base["primaryObjectId"] = int(object_id)
        base["mergedObjectIds"] = [int(m) for m in merged if _is_id(m)] if isinstance(merged, list) else []
        if _is_id(raw.get("newObjectId")):
            base["newObjectId"] = int(raw["newObjectId"])
    return [base], None


def _is_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or \
        (isinstance(value, str) and value.isdigit())


def _property_changes(value: Any) -> list[tuple[str, Any]] | None:
    if isinstance(value, dict):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        pairs: list[tuple[str, Any]] = []
        for item in value:
            name = item.get("propertyName", item.get("name")) if isinstance(item, dict) else None
            if isinstance(name, str):
                pairs.append((name, item.get("propertyValue", item.get("value", item.get("newValue")))))
        return pairs
    return None
