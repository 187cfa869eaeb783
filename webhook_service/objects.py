"""HubSpot's object types as hubhook names them, in one table.

Subscription types say ``deal.creation`` (singular), the CRM API says ``/objects/deals`` (plural) or
``0-3`` (type id), and generic ``object.*`` events carry only ``objectTypeId``. Everything that has to
translate between these spellings asks this module, so a new type is one row here.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

_CRM_ACTIONS = ("creation", "deletion", "propertyChange", "associationChange", "restore", "merge")


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type: its webhook name, API path name, type id and what HubSpot sends for it."""

    name: str                    # singular, as in subscription types: "deal"
    api_name: str                # path segment of the CRM API: "deals"
    type_id: str                 # "0-3"
    actions: tuple[str, ...]     # subscription actions HubSpot documents for the classic type
    modified_property: str = "hs_lastmodifieddate"


# Classic subscription types (https://developers.hubspot.com/docs/api/webhooks) plus the generic-only
# types a handler may poll.
KNOWN_TYPES: tuple[ObjectType, ...] = (
    ObjectType("contact", "contacts", "0-1", (*_CRM_ACTIONS, "privacyDeletion"), "lastmodifieddate"),
    ObjectType("company", "companies", "0-2", _CRM_ACTIONS),
    ObjectType("deal", "deals", "0-3", _CRM_ACTIONS),
    ObjectType("ticket", "tickets", "0-5", _CRM_ACTIONS),
    ObjectType("product", "products", "0-7", ("creation", "deletion", "propertyChange", "restore", "merge")),
    ObjectType("line_item", "line_items", "0-8", _CRM_ACTIONS),
    ObjectType("conversation", "conversations", "conversation",
               ("creation", "deletion", "privacyDeletion", "propertyChange", "newMessage")),
    ObjectType("quote", "quotes", "0-14", _CRM_ACTIONS),
    ObjectType("call", "calls", "0-48", _CRM_ACTIONS),
    ObjectType("email", "emails", "0-49", _CRM_ACTIONS),
    ObjectType("meeting", "meetings", "0-47", _CRM_ACTIONS),
    ObjectType("note", "notes", "0-46", _CRM_ACTIONS),
    ObjectType("task", "tasks", "0-27", _CRM_ACTIONS),
    ObjectType("invoice", "invoices", "0-53", _CRM_ACTIONS),
    ObjectType("order", "orders", "0-123", _CRM_ACTIONS),
    ObjectType("lead", "leads", "0-136", _CRM_ACTIONS),
    ObjectType("cart", "carts", "0-142", _CRM_ACTIONS),
)

#: Types that exist only as webhooks here: conversation threads have no CRM search endpoint, so the
#: poller never walks them.
UNSEARCHABLE = frozenset({"conversation"})

BY_NAME = {t.name: t for t in KNOWN_TYPES}
BY_API_NAME = {t.api_name: t for t in KNOWN_TYPES}
BY_TYPE_ID = {t.type_id: t for t in KNOWN_TYPES}

#: Every pattern below is matched with ``fullmatch``: an event's value reaches a URL path or a Redis key
#: only when all of it matches (``$`` would also accept a trailing newline: "2-1\n").
#: Type ids: "0-<n>" for HubSpot's own objects, "2-<n>" for custom objects; the CRM objects API takes
#: them in its paths (https://developers.hubspot.com/docs/api/crm/understanding-the-crm). Other
#: "<digits>-<digits>" ids are routed the same way: digits and a hyphen are safe in a path or a key.
TYPE_ID = re.compile(r"[0-9]{1,3}-[0-9]{1,20}")
#: Custom objects by fully qualified name: "p_widgets", "p1234_widgets" (also accepted in API paths).
CUSTOM_NAME = re.compile(r"p[0-9]{0,20}_[A-Za-z0-9_]{1,64}")
#: Custom objects by type id or fully qualified name.
CUSTOM_OBJECT = re.compile(r"2-[0-9]{1,20}|p[0-9]{0,20}_[A-Za-z0-9_]{1,64}")
#: A classic subscription type's object name: "contact", "line_item", or one hubhook does not know
#: ("appointment"), which has no API path hubhook could derive.
PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
GENERIC_PREFIX = "object"


def lookup(name: str) -> ObjectType:
    """The ObjectType for a singular name, API name, type id or custom-object name.

    Types missing from KNOWN_TYPES but named by a type id (``0-421``, ``2-123``) or a fully qualified
    name (``p_widgets``) get a synthetic row whose api_name is that id or name, which is what the
    CRM objects API accepts in its paths. Anything else raises KeyError: a plain unknown name such as
    ``appointment`` has no API path hubhook could know.
    """
    found = BY_NAME.get(name) or BY_API_NAME.get(name) or BY_TYPE_ID.get(name)
    if found:
        return found
    if TYPE_ID.fullmatch(name) or CUSTOM_NAME.fullmatch(name):
        return ObjectType(name, name, name, _CRM_ACTIONS)
    raise KeyError(name)


def is_known(name: str) -> bool:
    """True for every object name ``lookup`` accepts: the types whose records hubhook can read."""
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def is_well_formed(name: str) -> bool:
    """True for a name safe to route, to put in a Redis key and, when ``is_known``, in an API path:
    a known type, a type id, a fully qualified custom-object name or a plain lower-case name."""
    return bool(name in BY_NAME or name in BY_TYPE_ID or TYPE_ID.fullmatch(name)
                or CUSTOM_NAME.fullmatch(name) or PLAIN_NAME.fullmatch(name))


def name_for_type_id(type_id: str) -> str:
    """The singular name generic ``object.*`` events map to: "0-3" -> "deal", "2-99" -> "2-99"."""
    known = BY_TYPE_ID.get(type_id)
    return known.name if known else type_id


def event_type(change: Mapping[str, Any]) -> str | None:
    """The object type a validated event is about, as HubSpot named it, or None when that name is not
    well-formed (``is_well_formed``): such an event must go nowhere.

    Classic events name it in their subscription type (``deal.creation`` -> "deal", ``appointment.creation``
    -> "appointment"); generic ``object.*`` events in ``objectTypeId`` ("0-3" -> "deal", "0-421" -> "0-421").
    """
    prefix = change["subscriptionType"].split(".", 1)[0]
    if prefix == GENERIC_PREFIX:
        type_id = change.get("objectTypeId")
        name = name_for_type_id(type_id) if isinstance(type_id, str) else ""
    else:
        name = prefix
    return name if name != GENERIC_PREFIX and is_well_formed(name) else None


def _type_ids(events: list[dict]) -> set:
    """The distinct objectTypeIds of a delivery (C-level when every event has one, as generic ones do)."""
    try:
        return set(map(_TYPE_ID_OF, events))
    except KeyError:
        return {event["objectTypeId"] for event in events if "objectTypeId" in event}


_TYPE_ID_OF = itemgetter("objectTypeId")


def split_routable(events: list[dict]) -> tuple[list[dict], list[dict]]:
    """The events whose object type is well-formed (``event_type``), and the others.

    HubSpot adds object types over time, so an unknown but well-formed one is kept (its handlers are
    "*" and "<type>.*"); a malformed one ("../../oauth") could only ever reach a URL path or a Redis
    key, so the receiver drops it, and not the rest of its delivery. The usual delivery is judged on
    its distinct subscription types and type ids: no per-event work on the receiver's request path.
    """
    prefixes = {t.split(".", 1)[0] for t in set(map(itemgetter("subscriptionType"), events))}
    type_ids = _type_ids(events) if GENERIC_PREFIX in prefixes else set()
    if all(p == GENERIC_PREFIX or is_well_formed(p) for p in prefixes) and all(
            isinstance(t, str) and t != GENERIC_PREFIX and is_well_formed(name_for_type_id(t))
            for t in type_ids):
        return events, []
    kept: list[dict] = []
    dropped: list[dict] = []
    for event in events:
        (kept if event_type(event) is not None else dropped).append(event)
    return kept, dropped
