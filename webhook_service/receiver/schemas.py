"""marshmallow 4 schemas for HubSpot webhook events, and the guarded JSON parse in front of them.

One schema covers every documented subscription type (https://developers.hubspot.com/docs/api/webhooks):
the envelope every event carries, plus the fields each action requires, checked in
``validates_schema`` (marshmallow 4 ignores validators that return False, so every check raises).
Unknown extra fields are kept: HubSpot adds fields over time and handlers may want them. The older
``eventType`` key is copied to ``subscriptionType`` so the rest of hubhook reads one name.

Two bounds keep every later step cheap and safe: at most ``max_events`` events a delivery (the
receiver passes HUBHOOK_MAX_EVENTS_PER_DELIVERY) and values nested at most MAX_VALUE_DEPTH deep.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, missing, pre_load, validate, validates_schema

from webhook_service import objects
from webhook_service.errors import PayloadError

_ID = validate.Range(min=0, max=2**63 - 1)
# \Z, not $: "$" also matches before a trailing newline, and "contact.creation\n" is not HubSpot's.
_SUBSCRIPTION = re.compile(r"[A-Za-z0-9_-]{1,64}\.[A-Za-z]{1,64}\Z")
#: How deeply arrays and objects may nest inside one event field's value (``[]`` is 1). HubSpot's own
#: fields nest at most 1 (``mergedObjectIds``); a value nested near Python's recursion limit would parse
#: and then fail every later json.dumps (the RQ job, the logs) with RecursionError.
MAX_VALUE_DEPTH = 32

# Fields an action needs beyond the envelope (classic types: https://developers.hubspot.com/docs/api/webhooks,
# generic types: https://developers.hubspot.com/changelog/public-beta-generic-webhook-subscriptions).
_REQUIRED_BY_ACTION = {
    "propertyChange": ("propertyName",),
    "merge": ("primaryObjectId", "mergedObjectIds"),
    "associationChange": ("fromObjectId", "toObjectId"),
    "newMessage": ("messageId",),
}


def _id(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=_ID, **kwargs)


class EventSchema(Schema):
    """One HubSpot webhook event, classic (``contact.creation``) or generic (``object.creation``)."""

    class Meta:
        unknown = INCLUDE

    subscriptionType = fields.String(required=True, validate=validate.Regexp(_SUBSCRIPTION))
    eventId = _id(required=True)
    subscriptionId = _id(required=True)
    portalId = _id(required=True)
    appId = _id()
    occurredAt = _id(required=True)
    attemptNumber = _id(load_default=0)
    objectId = _id(required=True)
    objectTypeId = fields.String(validate=validate.Length(min=1, max=64))
    changeSource = fields.String(allow_none=True)
    sourceId = fields.String(allow_none=True)
    changeFlag = fields.String(allow_none=True)
    propertyName = fields.String(validate=validate.Length(min=1, max=512))
    propertyValue = fields.String(allow_none=True)
    primaryObjectId = _id()
    mergedObjectIds = fields.List(_id(), validate=validate.Length(max=1000))
    newObjectId = _id()
    numberOfPropertiesMoved = _id()
    associationType = fields.String()
    fromObjectId = _id()
    toObjectId = _id()
    fromObjectTypeId = fields.String()
    toObjectTypeId = fields.String()
    associationRemoved = fields.Boolean()
    isPrimaryAssociation = fields.Boolean()
    messageId = fields.String()
    messageType = fields.String()

    @pre_load
    def _accept_event_type(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and "subscriptionType" not in data and "eventType" in data:
            data = {**data, "subscriptionType": data["eventType"]}
        return data

    @validates_schema
    def _check_action_fields(self, data: dict, **kwargs: Any) -> None:
        prefix, action = data["subscriptionType"].split(".", 1)
        if prefix == objects.GENERIC_PREFIX and not data.get("objectTypeId"):
            raise ValidationError("generic object.* events must carry objectTypeId", "objectTypeId")
        missing = [f for f in _REQUIRED_BY_ACTION.get(action, ()) if f not in data]
        if missing:
            raise ValidationError(f"{data['subscriptionType']} events need {', '.join(missing)}", missing[0])


_EVENTS = EventSchema(many=True)
_ONE = EventSchema()


# -- fast path ---------------------------------------------------------------------------------
# marshmallow costs ~75 us an event (7 ms for a 100-event delivery, most of the receiver's time:
# bench/receiver.py). Events that marshmallow would load unchanged (every field already of its
# type and within its validators) are checked here with plain comparisons derived from the
# schema's own fields; anything else, including every invalid event, goes through marshmallow,
# which stays the single source of the result and of the error messages. A hook added to
# EventSchema must be mirrored in _fast_load (today: the eventType alias needs subscriptionType
# missing, which sends the event to marshmallow; _check_action_fields is called below).
# The checks run a column at a time (every value one field has in the delivery) so that the type
# and range tests are C loops (set(map(type, ...)), min, max): a check per value costs 3x more.
Column = Callable[[Sequence], bool]


def _column_check(field: fields.Field) -> Column | None:
    """A predicate accepting exactly the columns of values ``field`` loads unchanged, or None (use
    marshmallow). A column holds the values of the events that carry the field."""
    kind = {fields.Integer: int, fields.String: str, fields.Boolean: bool, fields.List: list}.get(type(field))
    if (kind is None or field.pre_load or field.post_load or len(field.validators) > 1
            or (isinstance(field, fields.Integer) and not field.strict)):  # = kind is int (exact types)
        return None
    v = field.validators[0] if field.validators else None
    bound: Column | None = None
    if v is None:
        pass
    elif isinstance(v, validate.Range) and kind is int and v.min_inclusive and v.max_inclusive \
            and None not in (v.min, v.max):
        bound = lambda col, lo=v.min, hi=v.max: lo <= min(col) and max(col) <= hi  # noqa: E731
    elif isinstance(v, validate.Length) and v.equal is None and kind in (str, list):
        bound = lambda col, lo=v.min or 0, hi=math.inf if v.max is None else v.max: (  # noqa: E731, E701
            lo <= min(map(len, col)) and max(map(len, col)) <= hi)
    elif isinstance(v, validate.Regexp) and kind is str:
        bound = lambda col, match=v.regex.match: all(map(match, col))  # noqa: E731
    else:
        return None
    inner = _column_check(field.inner) if isinstance(field, fields.List) else None  # = kind is list
    if kind is list and inner is None:
        return None
    allow_none = field.allow_none

    def check(col: Sequence) -> bool:
        if allow_none and None in col:
            col = [x for x in col if x is not None]
        if not col:
            return True
        if set(map(type, col)) != {kind} or (bound is not None and not bound(col)):
            return False
        return inner is None or inner(list(chain.from_iterable(col)))
    return check


def _never(column: Sequence) -> bool:
    return False


#: Declared field -> column check; a declared field no check can express always goes to marshmallow.
_CHECKS = {f.data_key or name: (_column_check(f) if f.data_key in (None, name) else None) or _never
           for name, f in _ONE.load_fields.items()}
_REQUIRED = {name for name, f in _ONE.load_fields.items() if f.required}
_DEFAULTS = {name: f.load_default for name, f in _ONE.load_fields.items() if f.load_default is not missing}
_GENERIC = objects.GENERIC_PREFIX + "."


def _columns(data: list[dict], present: set, uniform: bool) -> Iterator[tuple[Column, Sequence]]:
    """Each declared field's check with the values it has in ``data`` (events that lack it left out)."""
    keys = [key for key in present if key in _CHECKS]  # the rest EventSchema does not declare: kept as sent
    if len(keys) > 1 and uniform:
        # the usual delivery: every event has the same fields, so one C-level transpose gives the columns
        return zip(map(_CHECKS.__getitem__, keys), zip(*map(itemgetter(*keys), data)))
    return ((_CHECKS[key], [event[key] for event in data if key in event]) for key in keys)


def _fast_load(data: list) -> list[dict] | None:
    """The events as marshmallow would load them, or None when marshmallow must decide.

    The usual delivery (every event a dict with the same fields, no generic ``object.*`` type) is
    checked with C-level loops only: per-event Python code here cost as much as the JSON parse."""
    if set(map(type, data)) != {dict}:
        return None
    present = set().union(*data)
    uniform = len(set(map(len, data))) == 1 and len(data[0]) == len(present)  # same size, same keys
    if not (present >= _REQUIRED if uniform else all(event.keys() >= _REQUIRED for event in data)):
        return None
    if not all(check(column) for check, column in _columns(data, present, uniform)):
        return None
    try:
        types = set(map(itemgetter("subscriptionType"), data))
        if uniform and not any(t.startswith(_GENERIC) for t in types):
            # _check_action_fields then depends on the subscription type alone: once per distinct type
            for subscription in types:
                _ONE._check_action_fields(data[0] | {"subscriptionType": subscription})
        else:
            for event in data:
                _ONE._check_action_fields(event)
    except ValidationError:
        return None
    if _too_deep(data, present) is not None:  # marshmallow loads it, then parse_events names the field
        return None
    for name, default in _DEFAULTS.items():  # only once every event passed: marshmallow sees the body as sent
        if not (uniform and name in present):
            for event in data:
                if name not in event:
                    event[name] = default() if callable(default) else default
    return data


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError("numbers must be finite")
    return value


def _no_constants(name: str) -> None:
    raise PayloadError(f"{name} is not valid JSON")


#: Built once: ``json.loads`` with hooks builds a new decoder (and scanner) on every call.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constants)


class TooManyEvents(PayloadError):
    """A delivery holds more events than HUBHOOK_MAX_EVENTS_PER_DELIVERY; the receiver answers 413."""


def parse_events(body: bytes, *, max_events: int | None = None) -> list[dict]:
    """Parse and validate a delivery body; return the events as plain JSON-safe dicts or raise PayloadError
    (TooManyEvents above ``max_events`` events; None: no cap)."""
    try:
        data = _DECODER.decode(body.decode("utf-8"))
    except PayloadError:
        raise
    except RecursionError:
        raise PayloadError("body is nested too deeply") from None
    except ValueError as exc:  # includes UnicodeDecodeError and ints over Python's digit limit
        raise PayloadError(f"body is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(data, list) or not data:
        raise PayloadError("body must be a non-empty JSON array of HubSpot events")
    if max_events is not None and len(data) > max_events:
        raise TooManyEvents(f"delivery holds {len(data)} events; at most {max_events} are accepted (HubSpot "
                            f"sends up to 100 a request; HUBHOOK_MAX_EVENTS_PER_DELIVERY raises the cap)")
    try:
        fast = _fast_load(data)
        if fast is not None:
            return fast
        events = _EVENTS.load(data)
    except ValidationError as exc:
        raise PayloadError(f"events do not match HubSpot's shape: {_first_error(exc.messages)}") from None
    except RecursionError:
        raise PayloadError("body is nested too deeply") from None
    deep = _too_deep(events, set().union(*events))
    if deep is not None:
        raise PayloadError(f"{deep[:64]}: values may nest at most {MAX_VALUE_DEPTH} arrays or objects deep")
    return events


# -- depth: only fields that may hold arrays or objects are walked ------------------------------
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_CONTAINER_TYPES = frozenset({dict, list})
_SCALAR_FIELDS = (fields.Integer, fields.String, fields.Boolean)
#: Fields the schema loads as scalars or lists of scalars (``mergedObjectIds``): once an event loaded
#: (either path), their values nest at most 1 deep, so they are never walked.
_SHALLOW_KEYS = frozenset(f.data_key or name for name, f in _ONE.load_fields.items()
                          if type(f) in _SCALAR_FIELDS
                          or (type(f) is fields.List and type(f.inner) in _SCALAR_FIELDS))


def _too_deep(events: list[dict], keys: set) -> str | None:
    """The first field whose values nest deeper than MAX_VALUE_DEPTH, or None. ``keys``: every field
    the events carry. The usual delivery costs one set difference: it has no field left to walk."""
    for key in keys - _SHALLOW_KEYS:
        column = [event[key] for event in events if key in event]
        if not _SCALAR_TYPES.issuperset(map(type, column)) and _deeper_than(column, MAX_VALUE_DEPTH):
            return str(key)
    return None


def _deeper_than(values: list, limit: int) -> bool:
    """True when some value nests arrays/objects more than ``limit`` levels (``[]`` is 1). One level
    at a time: no recursion, and the walk stops at the first level past the limit."""
    level = [v for v in values if type(v) in _CONTAINER_TYPES]
    for _ in range(limit):
        if not level:
            return False
        inner = chain.from_iterable(v.values() if type(v) is dict else v for v in level)
        level = [v for v in inner if type(v) in _CONTAINER_TYPES]
    return bool(level)


def _first_error(messages: Any) -> str:
    """The first validation message, with its path, short enough for one log line."""
    path = []
    while isinstance(messages, dict) and messages:
        key, messages = next(iter(messages.items()))
        path.append(str(key))
    text = messages[0] if isinstance(messages, list) and messages else str(messages)
    return f"{'/'.join(path)}: {text}"[:200]
