"""Object types named by events: strict, whole-value patterns before anything reaches a path or a key.

An event's object type ends up in a CRM API path (``/crm/objects/<version>/<type>/batch/read``) and in
Redis keys (object histories, reconciliation notes). Only names that match a pattern in full get
there: ``$`` in a pattern would also accept a trailing newline.
"""
import json
import logging
import re

import pytest

from jobs.hubspot.client import HubSpotClient
from webhook_service import RegistrationError, Router, objects
from webhook_service.config import Config
from webhook_service.errors import PayloadError
from webhook_service.receiver.schemas import parse_events
from webhook_service.testing import make_event

POISON_TYPE_IDS = ["2-1\n", "0-3\n", "../../oauth", "p_widgets\n", "2-1/x", "0-1?x=1", "", "object",
                   "Contact", "2-", "-1", "p_wid gets", "2-1\r", "ｐ_widgets", "2-１"]


def generic(type_id: str, object_id: int = 1) -> dict:
    return make_event("object.creation", object_id, objectTypeId=type_id)


@pytest.mark.parametrize("name, api_name", [("0-421", "0-421"), ("2-1", "2-1"), ("p_widgets", "p_widgets"),
                                            ("p1234_Widgets", "p1234_Widgets"), ("0-3", "deals"),
                                            ("deals", "deals"), ("deal", "deals")])
def test_type_ids_and_custom_names_have_an_api_path(name, api_name):
    # Given a type id, a fully qualified custom-object name or a known name
    # Then lookup gives the name the CRM objects API takes in its path
    assert objects.lookup(name).api_name == api_name


@pytest.mark.parametrize("name", POISON_TYPE_IDS + ["appointment", "p_"])
def test_anything_else_has_no_api_path(name):
    # A trailing newline, a slash, full-width digits: never an API path (nor a plain unknown name)
    with pytest.raises(KeyError):
        objects.lookup(name)
    assert not objects.is_known(name)


def test_a_trailing_newline_is_refused_where_dollar_would_have_let_it_through():
    # Given the custom-object pattern hubhook shipped with, which ended in "$"
    assert re.compile(r"^(2-\d+|p\d*_[a-z0-9_]+)$").match("2-1\n")
    # Then today's patterns refuse the same value, and the event carrying it has no object type
    assert not objects.CUSTOM_OBJECT.fullmatch("2-1\n") and not objects.TYPE_ID.fullmatch("2-1\n")
    assert objects.event_type(generic("2-1\n")) is None


@pytest.mark.parametrize("event, expected", [
    (make_event("contact.creation", 1), "contact"),
    (generic("0-1"), "contact"),
    (generic("0-421"), "0-421"),
    (generic("2-143967026"), "2-143967026"),
    (generic("p_widgets"), "p_widgets"),
    (make_event("appointment.creation", 1), "appointment"),
    (make_event("zzz.creation", 1), "zzz"),
    (make_event("Contact-X.creation", 1), None),
    *[(generic(type_id), None) for type_id in POISON_TYPE_IDS if type_id],
])
def test_event_type_is_the_name_hubspot_sent_or_none(event, expected):
    assert objects.event_type(event) == expected


def test_split_routable_keeps_the_well_formed_and_drops_the_rest():
    # Given a delivery mixing classic, generic, unknown and malformed types
    good = [make_event("contact.creation", 1), generic("0-421", 2), make_event("appointment.creation", 3),
            generic("2-5", 4)]
    bad = [generic("../../oauth", 5), generic("2-1\n", 6), make_event("Bad-Type.creation", 7)]
    # When it is split
    kept, dropped = objects.split_routable([good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3]])
    # Then every well-formed event stays, in order, and only the malformed ones go
    assert kept == good and dropped == bad
    # And a delivery with nothing odd is returned as it came
    usual = [make_event("contact.creation", i) for i in range(5)]
    assert objects.split_routable(usual) == (usual, [])


def test_a_trailing_newline_in_the_subscription_type_is_a_malformed_delivery():
    # Given the same event with and without a trailing newline in its subscription type
    assert parse_events(json.dumps([make_event("contact.creation", 1)]).encode())
    # Then "$" would have let the newline through the schema; \Z does not, on the fast path and in marshmallow
    for events in ([make_event("contact.creation\n", 1)], [make_event("contact.creation\n", 1), {"x": 1}]):
        with pytest.raises(PayloadError, match="subscriptionType"):
            parse_events(json.dumps(events).encode())


@pytest.mark.parametrize("record_id", ["1\n", "../1", "1?archived=true", "", "１"])
def test_record_ids_must_be_digits_before_they_reach_a_path(record_id):
    # Given a client (no call is made: the id is refused first)
    client = HubSpotClient(Config(api_base_url="http://127.0.0.1:9", access_token="t"))
    with pytest.raises(ValueError, match="record id is a number"):
        client.get("contacts", record_id)
    with pytest.raises(ValueError, match="record id is a number"):
        client.get_thread(record_id)


def test_handlers_for_types_hubhook_does_not_know(caplog):
    router = Router()
    # Type ids and custom names register with HubSpot's CRM actions
    router.add(lambda e: e, "0-421.creation", name="by_id")
    # A plain unknown name registers only as "<name>.*", with one warning line
    with caplog.at_level(logging.WARNING, logger="hubhook.router"):
        router.add(lambda e: e, "appointment.*", name="appointments")
    assert "'appointment.*' names an object type hubhook does not know" in caplog.text
    assert router.matching(make_event("appointment.creation", 1))[0].name == "appointments"
    assert router.matching(generic("0-421"))[0].name == "by_id"
    # And the poller is never asked to walk a type it has no API path for
    assert router.object_types() == {"0-421"}


@pytest.mark.parametrize("pattern, message", [
    ("appointment.creation", "unknown object type 'appointment'"),
    ("contcat.*", "did you mean 'contact'"),
    ("2-1\n.*", "unknown object type"),
    ("../../oauth.*", "unknown object type"),
])
def test_unknown_types_stay_errors_when_they_look_like_typos_or_are_malformed(pattern, message):
    with pytest.raises(RegistrationError, match=message):
        Router().add(lambda e: e, pattern)


def test_a_catch_all_handler_never_matches_a_malformed_type():
    router = Router()
    router.add(lambda e: e, "*", name="everything")
    assert router.matching(generic("0-421")) and router.matching(make_event("appointment.creation", 1))
    assert router.matching(generic("../../oauth")) == [] and router.matching(generic("2-1\n")) == []
