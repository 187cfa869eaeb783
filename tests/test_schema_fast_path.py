"""The schema's fast path never disagrees with marshmallow: whatever it accepts, marshmallow loads the same.

Deliveries are drawn as valid events with fields swapped for values of other types, out of range,
missing or added, mixed within one delivery (so both the same-fields and the mixed-fields column
paths run); marshmallow (EventSchema) stays the reference.
"""
import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from webhook_service.errors import PayloadError
from webhook_service.receiver.schemas import _EVENTS, _fast_load, parse_events
from webhook_service.testing import make_event

TYPES = ["contact.creation", "contact.propertyChange", "deal.merge", "contact.associationChange",
         "object.creation", "conversation.newMessage", "bad type", "contact.privacyDeletion",
         "contact.creation\n"]
FIELDS = ["eventId", "subscriptionId", "portalId", "appId", "occurredAt", "attemptNumber", "objectId",
          "objectTypeId", "propertyName", "propertyValue", "changeSource", "primaryObjectId", "mergedObjectIds",
          "fromObjectId", "toObjectId", "associationRemoved", "messageId", "subscriptionType", "extra"]
values = (st.none() | st.booleans() | st.integers(min_value=-2, max_value=2**64) | st.integers(min_value=0, max_value=9)
          | st.floats(allow_nan=False) | st.text(max_size=70) | st.text(max_size=3) | st.sampled_from(TYPES)
          | st.lists(st.integers(min_value=-1, max_value=2**63), max_size=3))


#: Valid events of each shape the schema tells apart, to start from.
BASES = [make_event("contact.creation", 1), make_event("contact.propertyChange", 2, property="email", value="a@x"),
         make_event("deal.merge", 3, primaryObjectId=3, mergedObjectIds=[4, 5]),
         make_event("contact.associationChange", 6, fromObjectId=6, toObjectId=7, associationRemoved=False),
         make_event("object.creation", 8, objectTypeId="2-123"),
         make_event("conversation.newMessage", 9, messageId="m1", changeFlag=None)]


@st.composite
def events(draw):
    event = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2]))):
        name = draw(st.sampled_from(FIELDS))
        if draw(st.booleans()):
            event.pop(name, None)
        else:
            event[name] = draw(values)
    return event


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(st.lists(events(), min_size=1, max_size=4))
def test_the_fast_path_agrees_with_marshmallow(delivery):
    fast = _fast_load(copy.deepcopy(delivery))
    try:
        reference = _EVENTS.load(copy.deepcopy(delivery))
    except ValidationError:
        assert fast is None
        return
    assert fast is None or fast == reference


def test_a_usual_delivery_takes_the_fast_path():
    delivery = [make_event("contact.propertyChange", i, property="email", value=f"{i}@x") for i in range(100)]
    assert _fast_load(copy.deepcopy(delivery)) == _EVENTS.load(delivery)


def test_the_depth_bound_holds_on_both_paths():
    # Given a value nested 33 levels deep, in a usual delivery and in one with the eventType alias
    deep = [[]]
    for _ in range(31):
        deep = [deep]
    usual = [make_event("contact.creation", i, extra=deep) for i in range(3)]
    legacy = {k: v for k, v in make_event("contact.creation", 9).items() if k != "subscriptionType"}
    mixed = [*usual, {**legacy, "eventType": "contact.creation"}]  # the alias: marshmallow's alone
    # Then the fast path leaves both to marshmallow, and both are refused, naming the field
    assert _fast_load(copy.deepcopy(usual)) is None and _fast_load(copy.deepcopy(mixed)) is None
    for delivery in (usual, mixed):
        with pytest.raises(PayloadError, match="extra: values may nest at most 32"):
            parse_events(json.dumps(delivery).encode())
    # And one level less is accepted, by the fast path for the usual delivery
    shallower = [{**event, "extra": deep[0]} for event in usual]
    assert _fast_load(copy.deepcopy(shallower)) == _EVENTS.load(copy.deepcopy(shallower))
    assert len(parse_events(json.dumps([*shallower, mixed[-1]]).encode())) == 4
