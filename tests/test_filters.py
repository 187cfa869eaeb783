"""Handler filters (to=, from_=) and echo suppression, through the real worker and the fake HubSpot."""
import time

import pytest

from webhook_service import RegistrationError, Router
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.filters import IgnoreSources, old_value
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.telemetry import object_history, stats
from webhook_service.testing import make_event

from .conftest import drain


def deliver(config, redis, events):
    return enqueue_delivery(redis, build_queue(config, redis), events)


def stage_change(deal_id, value, **extra):
    return make_event("deal.propertyChange", deal_id, property="dealstage", value=value, **extra)


@pytest.fixture
def seen():
    return []


def test_to_matches_the_new_value_from_the_event(config, redis, hubspot, seen):
    # Given a handler for deals that move to closedwon or closedlost
    hubspot.add("deals", 1, {"dealstage": "closedwon"})
    hubspot.add("deals", 2, {"dealstage": "qualifiedtobuy"})
    router = Router()
    router.add(seen.append, "deal.propertyChange", name="closed", property="dealstage", to=["closedwon", "closedlost"])
    # When one deal is won and another qualified
    deliver(config, redis, [stage_change(1, "closedwon"), stage_change(2, "qualifiedtobuy")])
    hubspot.reset_calls()
    drain(config, router)
    # Then only the won deal reached it, and only that deal was fetched, without property history
    assert [e.object_id for e in seen] == ["1"]
    (call,) = hubspot.calls
    assert [i["id"] for i in call.body["inputs"]] == ["1"] and call.body["propertiesWithHistory"] == []


def test_from_compares_the_old_value_from_property_history(config, redis, hubspot, seen):
    # Given two deals that both just moved to closedwon, from different stages
    for deal_id, before in ((1, "contractsent"), (2, "appointmentscheduled")):
        hubspot.add("deals", deal_id, {"dealstage": before})
        time.sleep(0.002)
        hubspot.update("deals", deal_id, {"dealstage": "closedwon"})
    router = Router()
    router.add(seen.append, "deal.propertyChange", name="signed", property="dealstage",
               from_="contractsent", to="closedwon")
    router.add(lambda e: None, "deal.propertyChange", name="all-stages", property="dealstage")
    # When HubSpot reports both changes
    deliver(config, redis, [stage_change(1, "closedwon"), stage_change(2, "closedwon")])
    hubspot.reset_calls()
    drain(config, router)
    # Then only the deal that came from contractsent reached the from_ handler
    assert [e.object_id for e in seen] == ["1"]
    # And the history was read in the same single batch read, only for the from_ property
    (call,) = hubspot.calls
    assert call.body["propertiesWithHistory"] == ["dealstage"]
    # And the object history says why deal 2 did not reach it
    seen_entry = [e for e in object_history.read(redis, "deal", "2") if e["kind"] == "seen"][0]
    assert seen_entry["handlers"] == ["all-stages"] and seen_entry["filtered"] == ["signed"]
    assert stats.read(redis).series("changes_filtered") == {(("handler", "signed"),): 1.0}


def test_echo_suppression_drops_hubhooks_own_writes_before_any_fetch(config, redis, hubspot, seen):
    # Given HUBHOOK_IGNORE_SOURCES naming hubhook's integration user
    config = Config(**{**config.__dict__, "ignore_sources": ("userId:123", "IMPORT")})
    hubspot.add("deals", 1, {"dealstage": "closedwon"})
    router = Router()
    router.add(seen.append, "deal.propertyChange", name="stage", property="dealstage")
    # When a delivery holds our own write-back, an import and a user's change
    deliver(config, redis, [stage_change(1, "a", changeSource="INTEGRATION", sourceId="userId:123", occurred_at=1),
                            stage_change(1, "b", changeSource="import", occurred_at=2),
                            stage_change(1, "c", changeSource="CRM_UI", sourceId="userId:9", occurred_at=3)])
    drain(config, router)
    # Then the handler saw only the user's change, and the others are counted and kept in the history
    assert [[c["propertyValue"] for c in e.changes] for e in seen] == [["c"]]
    assert stats.read(redis).series("changes_suppressed") == {(("reason", "echo"),): 2.0}
    kinds = [e["kind"] for e in object_history.read(redis, "deal", "1")]
    assert kinds[0] == "suppressed" and "seen" in kinds and "handler" in kinds


def test_a_delivery_of_only_echoes_costs_no_api_call(config, redis, hubspot, seen):
    config = Config(**{**config.__dict__, "ignore_sources": ("INTEGRATION",)})
    router = Router()
    router.add(seen.append, "deal.*")
    deliver(config, redis, [stage_change(1, "x", changeSource="INTEGRATION")])
    hubspot.reset_calls()
    drain(config, router)
    assert seen == [] and hubspot.count() == 0


@pytest.mark.parametrize("options, message", [
    ({"to": "closedwon"}, "to= compares the value of one property: add property="),
    ({"from_": "a"}, "from_= compares the value of one property"),
    ({"property": "dealstage", "to": []}, "must be a value or a non-empty list"),
    ({"property": "dealstage", "to": {"a": 1}}, "must be a value or a non-empty list"),
    ({"property": "dealstage", "too": "x"}, "unknown option 'too'.*options are: .*to, from_"),
])
def test_filter_options_are_validated_at_registration(options, message):
    with pytest.raises(RegistrationError, match=message):
        Router().add(lambda e: None, "deal.propertyChange", **options)


def test_old_value_ignores_later_changes_and_clock_skew():
    record = {"propertiesWithHistory": {"dealstage": [
        {"value": "d", "timestamp": "2026-01-01T00:00:09.000Z"},    # a later change, already in HubSpot
        {"value": "c", "timestamp": "2026-01-01T00:00:05.400Z"},    # this change (recorded 400 ms late)
        {"value": "b", "timestamp": "2026-01-01T00:00:02.000Z"},
    ]}}
    at = 1767225605000  # 2026-01-01T00:00:05Z
    change = {"propertyName": "dealstage", "propertyValue": "c", "occurredAt": at}
    assert old_value(record, change) == "b"
    assert old_value(record, {**change, "propertyValue": "b", "occurredAt": at - 3000}) is None
    assert old_value(None, change) is None


def test_ignore_sources_match_change_source_case_insensitively_and_source_id_exactly():
    ignore = IgnoreSources(["INTEGRATION", "userId:123"])
    assert ignore.matches({"changeSource": "integration"})
    assert ignore.matches({"changeSource": "CRM_UI", "sourceId": "userId:123"})
    assert not ignore.matches({"changeSource": "CRM_UI", "sourceId": "userId:1234"})
    assert not IgnoreSources([])
