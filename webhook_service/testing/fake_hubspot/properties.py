"""Which properties each object type has in one portal of the fake HubSpot, and the checks HubSpot
runs on a write against them.

HubSpot refuses a create or update naming a property the account does not have (400
``PROPERTY_DOESNT_EXIST``) or giving a number property something that is not a number (400
``INVALID_INTEGER`` / ``INVALID_DECIMAL``); error format:
https://developers.hubspot.com/docs/api-reference/error-handling . A fake that stored anything would
let a handler's write-back pass its tests and fail in production, so each portal starts with a small
catalogue of HubSpot's default properties per type, and learns the ones a test seeds (``add``,
``update``, ``define_property``), typed from the seeded value.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from webhook_service.objects import ObjectType
from webhook_service.testing.fake_hubspot.shapes import created_property, error_body

#: Property types the fake checks values of; anything else is stored as given.
STRING, NUMBER, INTEGER, DATETIME, ENUMERATION, BOOL = "string", "number", "integer", "datetime", \
    "enumeration", "bool"
TYPES = frozenset({STRING, NUMBER, INTEGER, DATETIME, ENUMERATION, BOOL})

_OWNED = {"hubspot_owner_id": ENUMERATION, "hs_merged_object_ids": STRING, "hs_object_source": STRING}
_ACTIVITY = {"hs_timestamp": DATETIME, **_OWNED}
#: A subset of HubSpot's default properties per type (each type's properties page in HubSpot's docs,
#: e.g. https://knowledge.hubspot.com/properties/hubspots-default-contact-properties); enough for the
#: writes handlers usually make. Tests add their own with ``FakeHubSpot.define_property`` or by seeding.
DEFAULT_CATALOGUE: dict[str, dict[str, str]] = {
    "contacts": {**_OWNED, "email": STRING, "firstname": STRING, "lastname": STRING, "phone": STRING,
                 "mobilephone": STRING, "company": STRING, "website": STRING, "jobtitle": STRING,
                 "address": STRING, "city": STRING, "state": STRING, "zip": STRING, "country": STRING,
                 "lifecyclestage": ENUMERATION, "hs_lead_status": ENUMERATION, "hs_persona": ENUMERATION,
                 "hs_language": ENUMERATION, "annualrevenue": STRING, "numemployees": ENUMERATION,
                 "industry": STRING, "message": STRING, "notes_last_contacted": DATETIME,
                 "hs_email_optout": BOOL, "num_associated_deals": INTEGER, "associatedcompanyid": INTEGER},
    "companies": {**_OWNED, "name": STRING, "domain": STRING, "website": STRING, "phone": STRING,
                  "address": STRING, "city": STRING, "state": STRING, "zip": STRING, "country": STRING,
                  "industry": ENUMERATION, "description": STRING, "type": ENUMERATION,
                  "lifecyclestage": ENUMERATION, "numberofemployees": INTEGER, "annualrevenue": NUMBER,
                  "num_associated_contacts": INTEGER, "num_associated_deals": INTEGER},
    "deals": {**_OWNED, "dealname": STRING, "amount": NUMBER, "dealstage": ENUMERATION,
              "pipeline": ENUMERATION, "closedate": DATETIME, "dealtype": ENUMERATION, "description": STRING,
              "hs_priority": ENUMERATION, "hs_deal_stage_probability": NUMBER, "hs_forecast_amount": NUMBER,
              "num_associated_contacts": INTEGER},
    "tickets": {**_OWNED, "subject": STRING, "content": STRING, "hs_pipeline": ENUMERATION,
                "hs_pipeline_stage": ENUMERATION, "hs_ticket_category": ENUMERATION,
                "hs_ticket_priority": ENUMERATION, "source_type": ENUMERATION, "closed_date": DATETIME},
    "products": {**_OWNED, "name": STRING, "description": STRING, "price": NUMBER, "hs_sku": STRING,
                 "hs_cost_of_goods_sold": NUMBER, "hs_recurring_billing_period": STRING},
    "line_items": {**_OWNED, "name": STRING, "description": STRING, "price": NUMBER, "quantity": NUMBER,
                   "amount": NUMBER, "discount": NUMBER, "hs_product_id": INTEGER, "hs_sku": STRING},
    "calls": {**_ACTIVITY, "hs_call_title": STRING, "hs_call_body": STRING, "hs_call_duration": INTEGER,
              "hs_call_direction": ENUMERATION, "hs_call_status": ENUMERATION},
    "emails": {**_ACTIVITY, "hs_email_subject": STRING, "hs_email_text": STRING, "hs_email_html": STRING,
               "hs_email_direction": ENUMERATION, "hs_email_status": ENUMERATION},
    "meetings": {**_ACTIVITY, "hs_meeting_title": STRING, "hs_meeting_body": STRING,
                 "hs_meeting_start_time": DATETIME, "hs_meeting_end_time": DATETIME,
                 "hs_meeting_outcome": ENUMERATION},
    "notes": {**_ACTIVITY, "hs_note_body": STRING},
    "tasks": {**_ACTIVITY, "hs_task_subject": STRING, "hs_task_body": STRING, "hs_task_status": ENUMERATION,
              "hs_task_priority": ENUMERATION, "hs_task_type": ENUMERATION},
}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Problem:
    """One refused property value, in HubSpot's words."""

    name: str
    code: str
    message: str


class PropertyCatalogue:
    """One portal's properties per object type: the defaults plus what tests define or seed."""

    def __init__(self) -> None:
        self._extra: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def type_of(self, otype: ObjectType, name: str) -> str | None:
        """The property's type, or None when the portal has no such property."""
        if name in ("hs_object_id", created_property(otype), otype.modified_property):
            return DATETIME if name != "hs_object_id" else INTEGER
        with self._lock:
            found = self._extra.get(otype.api_name, {}).get(name)
        return found or DEFAULT_CATALOGUE.get(otype.api_name, {}).get(name)

    def all(self, otype: ObjectType) -> dict[str, str]:
        """Every property of the type: name -> the fake's type, the derived ones included."""
        with self._lock:
            extra = dict(self._extra.get(otype.api_name, {}))
        found = {**DEFAULT_CATALOGUE.get(otype.api_name, {}), **extra}
        found.update({"hs_object_id": INTEGER, created_property(otype): DATETIME, otype.modified_property: DATETIME})
        return found

    def define(self, otype: ObjectType, name: str, kind: str) -> None:
        """Add (or retype) a property, as creating it in HubSpot's settings would."""
        if kind not in TYPES:
            raise ValueError(f"property type must be one of {sorted(TYPES)}, got {kind!r}")
        with self._lock:
            self._extra.setdefault(otype.api_name, {})[name] = kind

    def learn(self, otype: ObjectType, properties: Mapping[str, Any]) -> None:
        """Define the properties a test seeds that the portal lacks: numbers from int/float values,
        strings otherwise. Seeded values must still suit the properties that exist."""
        problems = [p for p in self.check(otype, properties) if p.code != "PROPERTY_DOESNT_EXIST"]
        if problems:
            raise ValueError("; ".join(p.message for p in problems))
        for name, value in properties.items():
            if self.type_of(otype, name) is None:
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                self.define(otype, name, NUMBER if number else STRING)

    def check(self, otype: ObjectType, properties: Mapping[str, Any]) -> list[Problem]:
        """What HubSpot would refuse in a write's ``properties``, in input order."""
        problems = []
        for name, value in properties.items():
            kind = self.type_of(otype, name)
            if kind is None:
                problems.append(Problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            elif kind in (NUMBER, INTEGER) and not _valid_number(value, whole=kind == INTEGER):
                code = "INVALID_INTEGER" if kind == INTEGER else "INVALID_DECIMAL"
                problems.append(Problem(name, code, f"{name} was not a valid number"))
        return problems


def _valid_number(value: Any, *, whole: bool) -> bool:
    """A JSON number or a numeric string; "" and null clear the property and are always accepted."""
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return False
    text = str(value).strip()
    if isinstance(value, (int, float)) or _NUMBER.match(text):
        try:
            number = Decimal(text)
        except ArithmeticError:
            return False
        return number.is_finite() and (not whole or number == number.to_integral_value())
    return False


def invalid_values_body(problems: list[Problem], portal_id: int | None) -> dict[str, Any]:
    """HubSpot's 400 for refused property values: the legacy list in ``message`` (which clients parse)
    and the documented ``errors[]`` with ``code`` and ``context.propertyName``."""
    legacy = [{"isValid": False, "message": p.message, "error": p.code, "name": p.name,
               "localizedErrorMessage": p.message, **({"portalId": portal_id} if portal_id else {})}
              for p in problems]
    return error_body(f"Property values were not valid: {json.dumps(legacy, separators=(',', ':'))}",
                      "VALIDATION_ERROR",
                      errors=[{"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}}
                              for p in problems])


#: The fake's types as the properties API reports them (``type``, ``fieldType``): HubSpot has no integer
#: type, whole numbers are ``number`` properties.
_API_TYPES = {STRING: ("string", "text"), NUMBER: ("number", "number"), INTEGER: ("number", "number"),
              DATETIME: ("datetime", "date"), ENUMERATION: ("enumeration", "select"),
              BOOL: ("bool", "booleancheckbox")}


def property_definitions(catalogue: PropertyCatalogue, otype: ObjectType) -> list[dict[str, Any]]:
    """The properties API's ``results`` for a type
    (https://developers.hubspot.com/docs/api-reference/latest/crm/properties/get-properties)."""
    out = []
    for name, kind in sorted(catalogue.all(otype).items()):
        api_type, field_type = _API_TYPES.get(kind, ("string", "text"))
        out.append({"name": name, "label": name.replace("_", " ").title(), "type": api_type, "fieldType": field_type,
                    "groupName": f"{otype.name}information", "description": "", "options": [], "displayOrder": -1,
                    "calculated": False, "externalOptions": False, "hasUniqueValue": name == "hs_object_id",
                    "hidden": False, "hubspotDefined": name in DEFAULT_CATALOGUE.get(otype.api_name, {}),
                    "formField": False, "archived": False,
                    "modificationMetadata": {"archivable": True, "readOnlyDefinition": False,
                                             "readOnlyValue": False}})
    return out
