"""HubSpot's object types as hubhook names them, in one table.

Subscription types say ``deal.creation`` (singular), the CRM API says ``/objects/deals`` (plural) or
``0-3`` (type id), and generic ``object.*`` events carry only ``objectTypeId``. Everything that has to
translate between these spellings asks this module, so a new type is one row here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_CRM_ACTIONS = ("creation", "deletion", "propertyChange", "associationChange", "restore", "merge")


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type: its webhook name, API path name, type id and what HubSpot sends for it."""

    name: str                    # singular, as in subscription types: "deal"
    api_name: str                # path segment of the CRM API: "deals"
    type_id: str                 # "0-3"
    actions: tuple[str, ...]     # subscription actions HubSpot documents for the classic type
    modified_property: str = "hs_lastmodifieddate"


# Classic subscription types (FACTS.md 2.3) plus the generic-only types a handler may poll.
KNOWN_TYPES: tuple[ObjectType, ...] = (
    ObjectType("contact", "contacts", "0-1", _CRM_ACTIONS + ("privacyDeletion",), "lastmodifieddate"),
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

BY_NAME = {t.name: t for t in KNOWN_TYPES}
BY_API_NAME = {t.api_name: t for t in KNOWN_TYPES}
BY_TYPE_ID = {t.type_id: t for t in KNOWN_TYPES}

#: Custom objects: by type id ("2-1234567") or fully qualified name ("p_widgets", "p1234_widgets").
CUSTOM_OBJECT = re.compile(r"^(2-\d+|p\d*_[a-z0-9_]+)$")
GENERIC_PREFIX = "object"


def lookup(name: str) -> ObjectType:
    """The ObjectType for a singular name, API name, type id or custom-object name.

    Custom objects get a synthetic row whose api_name is the id or name itself, which is what the
    CRM API accepts in its paths.
    """
    found = BY_NAME.get(name) or BY_API_NAME.get(name) or BY_TYPE_ID.get(name)
    if found:
        return found
    if CUSTOM_OBJECT.match(name):
        return ObjectType(name, name, name, _CRM_ACTIONS)
    raise KeyError(name)


def is_known(name: str) -> bool:
    """True for every object name ``lookup`` accepts."""
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def name_for_type_id(type_id: str) -> str:
    """The singular name generic ``object.*`` events map to: "0-3" -> "deal", "2-99" -> "2-99"."""
    known = BY_TYPE_ID.get(type_id)
    return known.name if known else type_id
