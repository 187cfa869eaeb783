"""HubSpot's JSON shapes for the fake API: records, dates, property histories and error bodies.

Every route of the fake answers through these helpers, so a record read by single GET, batch read,
list or search looks the same, and every error carries the fields HubSpot's do (records:
https://developers.hubspot.com/docs/api-reference/legacy/crm/using-object-apis; errors:
https://developers.hubspot.com/docs/api-reference/error-handling).
"""
from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webhook_service.objects import ObjectType

#: Properties HubSpot returns when a read names none (no ``properties``, or an empty list): each type's
#: defaults, present as null when the record has no value, plus the create date, ``hs_object_id`` and
#: the modified-date property that every read carries (the CRM object guides' example responses,
#: e.g. https://developers.hubspot.com/docs/api/crm/deals).
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("domain", "name"),
    "contacts": ("email", "firstname", "lastname"),
    "deals": ("amount", "closedate", "dealname", "dealstage", "pipeline"),
    "products": ("description", "name", "price"),
    "tickets": ("content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority", "subject"),
}
#: Activities name their create date ``hs_createdate`` (the searchable-objects table of
#: https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm).
_ACTIVITIES = frozenset({"calls", "emails", "meetings", "notes", "tasks"})


class ValidationFailed(Exception):
    """A request HubSpot would refuse with 400 VALIDATION_ERROR; str() is the message it sends."""


@dataclass(frozen=True, slots=True)
class Record:
    """One version of a CRM record. Writes make a new version, so older ones stay valid for search lag
    and for ``propertiesWithHistory``, which walks ``previous``."""

    id: str
    properties: dict[str, str]     # stored values only; ids and dates are derived from the fields below
    created_ms: int
    updated_ms: int
    source: str = "CRM_UI"
    previous: Record | None = None
    archived_ms: int | None = None
    user_id: int | None = None     # who changed it in HubSpot's UI (history's sourceId/updatedByUserId)


def now_ms() -> int:
    """Epoch milliseconds now, HubSpot's timestamp unit."""
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """HubSpot's date spelling: ISO-8601 UTC with milliseconds and ``Z``."""
    return f"{_iso_second(ms // 1000)}.{ms % 1000:03d}Z"


@functools.lru_cache(maxsize=65536)
def _iso_second(second: int) -> str:
    """Cached: a search page renders hundreds of dates, mostly from the same few seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def as_property(value: Any) -> str:
    """A property value as HubSpot stores it: always a string ("" clears the property)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(round(value.timestamp() * 1000))
    return str(value)


def created_property(otype: ObjectType) -> str:
    """The create-date property HubSpot returns by default for this type."""
    return "hs_createdate" if otype.api_name in _ACTIVITIES else "createdate"


def property_value(record: Record, name: str, otype: ObjectType) -> str | None:
    """A property as the API shows it, including the ones HubSpot derives (id, create and modify dates)."""
    if name == "hs_object_id":
        return record.id
    if name == created_property(otype):
        return iso(record.created_ms)
    if name == otype.modified_property:
        return iso(record.updated_ms)
    return record.properties.get(name) or None


def history(record: Record, name: str, otype: ObjectType) -> list[dict[str, Any]]:
    """``propertiesWithHistory`` entries for one property, newest first, one per change of value (a
    cleared value is an entry with ``""``), shaped as the CRM objects spec's ``ValueWithTimestamp``:
    ``value``, ``timestamp`` (ISO-8601), ``sourceType``, and for a change made by a user in HubSpot's UI
    ``sourceId`` (``userId:<id>``) and ``updatedByUserId``
    (https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects)."""
    derived = name in ("hs_object_id", created_property(otype), otype.modified_property)
    out: list[dict[str, Any]] = []
    version: Record | None = record
    while version is not None:
        older = version.previous
        value = property_value(version, name, otype) if derived else version.properties.get(name)
        before = None if older is None else (property_value(older, name, otype) if derived
                                             else older.properties.get(name))
        if value != before and not (value is None and older is None):
            entry: dict[str, Any] = {"value": value or "", "timestamp": iso(version.updated_ms),
                                     "sourceType": version.source}
            if version.user_id is not None:
                entry.update(sourceId=f"userId:{version.user_id}", updatedByUserId=version.user_id)
            out.append(entry)
        version = older
    return out


def render(record: Record, otype: ObjectType, names: Iterable[str] | None = None,
           with_history: Iterable[str] = (), known: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """A record as every CRM read endpoint returns it: the asked properties (or, when none are asked,
    the type's defaults), null when the record has no value, plus create date, ``hs_object_id`` and
    the modified-date property, all strings. HubSpot answers ``"properties": []`` with the defaults too,
    which is what hubhook sends for handlers that declare no ``properties=``. Asked properties the
    portal does not have (``known`` says no) are left out, as HubSpot ignores them."""
    created, updated = iso(record.created_ms), iso(record.updated_ms)
    derived = {created_property(otype): created, "hs_object_id": record.id, otype.modified_property: updated}
    stored = record.properties
    asked = {name for name in names or () if known is None or name in derived or known(name)}
    wanted = (asked or set(DEFAULT_PROPERTIES.get(otype.api_name, ()))).union(derived)
    properties = {name: derived[name] if name in derived else stored.get(name) or None
                  for name in sorted(wanted)}
    out: dict[str, Any] = {"id": record.id, "properties": properties}
    if with_history:
        out["propertiesWithHistory"] = {name: history(record, name, otype) for name in with_history}
    out.update(createdAt=created, updatedAt=updated, archived=record.archived_ms is not None)
    if record.archived_ms is not None:
        out["archivedAt"] = iso(record.archived_ms)
    return out


def names_of(body: dict[str, Any], field: str) -> list[str] | None:
    """A list of property names in a body (``properties``, ``propertiesWithHistory``), or None."""
    names = body.get(field)
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValidationFailed(f"{field} must be a list of property names")
    return names


def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's CRM error body: status, message, correlationId, category, then extras
    (https://developers.hubspot.com/docs/api-reference/error-handling)."""
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category,
            **extra}


def rate_limit_body(policy: str, period: str) -> dict[str, Any]:
    """HubSpot's 429 body (samples/rate_limit_429_daily_example.json) for one policy."""
    return {"status": "error", "message": f"You have reached your {period} limit.", "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": policy, "requestId": str(uuid.uuid4())}
