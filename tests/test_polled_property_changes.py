"""property=, to= and from_= on a polled type: the poller turns property history into propertyChange events.

Real Redis, the fake HubSpot over HTTP (its batch read serves ``propertiesWithHistory`` as HubSpot does),
the real poller (``poll`` is one round of ``hubhook poll --once``) and a real RQ worker (``drain``).
Tickets are polled: they are not in HUBHOOK_WEBHOOK_TYPES.
"""
from __future__ import annotations

import json
from collections import defaultdict

import pytest

from jobs.poller.cursor import Cursor
from jobs.poller.polled_types import Stream
from jobs.poller.property_changes import history_changes
from webhook_service import Router, keys, objects
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.errors import RegistrationError
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.telemetry import object_history
from webhook_service.testing import make_event
from webhook_service.timestamps import iso_utc, parse_ms

from . import poller_support as kit
from .conftest import drain
from .ops_support import hubhook
from .poller_support import cursor, poll, queued

config, hubspot = kit.config, kit.hubspot  # the poller tests' fixtures


@pytest.fixture
def calls():
    """Handler name -> the events it was called with."""
    return defaultdict(list)


def recorder(calls, name):
    return lambda event: calls[name].append(event)


def started(config, redis, router, hubspot):
    """A ticket in stage 1 from before the poller ran, then a first round: the cursor begins at now.
    Returns the cursor's position (epoch ms), from which the tests date their changes."""
    hubspot.add("tickets", 1, {"subject": "Printer on fire", "hs_pipeline_stage": "1"})
    poll(config, router)
    return cursor(config, redis).position


def property_events(config, redis):
    return [e for e in queued(config, redis) if e.get("propertyName")]


def test_a_stage_change_fires_the_property_handler_once(config, redis, hubspot, calls):
    # Given a property= handler on tickets' stage and a plain ticket handler, and a started poller
    router = Router()
    router.add(recorder(calls, "stage"), "ticket.propertyChange", name="stage", property="hs_pipeline_stage")
    router.add(recorder(calls, "any"), "ticket.*", name="any")
    start = started(config, redis, router, hubspot)
    # When the ticket moves to stage 2, and the poller runs three rounds (re-reading its lookback window)
    hubspot.update("tickets", 1, {"hs_pipeline_stage": "2"}, modified_at_ms=start + 100)
    hubspot.reset_calls()
    poll(config, router)
    history_reads = [c for c in hubspot.calls if c.path.endswith("/batch/read")]
    poll(config, router)
    poll(config, router)
    drain(config, router)
    # Then the property handler was called once, with the change as HubSpot's webhook would send it
    (event,) = calls["stage"]
    assert (event.object_id, event.subscription_type, event.source) == ("1", "ticket.propertyChange", "poll")
    (change,) = [c for c in event.changes if c.get("propertyName")]
    assert change["propertyName"] == "hs_pipeline_stage" and change["propertyValue"] == "2"
    assert change["occurredAt"] == start + 100 and change["previousValue"] == "1"
    assert change["changeSource"] == "CRM_UI" and change["sourceId"].startswith("userId:")
    assert event.record["properties"]["hs_pipeline_stage"] == "2"
    # And the plain handler got what polled handlers always got: one call, its polled event as latest
    (plain,) = calls["any"]
    assert plain.subscription_type == "ticket.propertyChange"
    # And the poller read the history once: one batch read, only the watched property
    (read,) = history_reads
    assert read.body["propertiesWithHistory"] == ["hs_pipeline_stage"] and read.body["inputs"] == [{"id": "1"}]


def test_to_and_from_filters_match_on_polled_changes(config, redis, hubspot, calls):
    # Given to= and from_= handlers that should and should not match a move from stage 1 to 3
    router = Router()
    for name, options in {"to_3": {"to": "3"}, "to_9": {"to": "9"}, "from_1": {"from_": "1"},
                          "from_5": {"from_": "5"}, "from_1_to_3": {"from_": "1", "to": "3"}}.items():
        router.add(recorder(calls, name), "ticket.propertyChange", name=name, property="hs_pipeline_stage", **options)
    start = started(config, redis, router, hubspot)
    # When the ticket moves from 1 to 3
    hubspot.update("tickets", 1, {"hs_pipeline_stage": "3"}, modified_at_ms=start + 100)
    poll(config, router)
    hubspot.reset_calls()
    drain(config, router)
    # Then exactly the matching handlers ran, once each
    assert {name: len(events) for name, events in calls.items()} == {"to_3": 1, "from_1": 1, "from_1_to_3": 1}
    # And the worker did not read the history again: the polled change carries its previous value
    assert all(c.body.get("propertiesWithHistory") in (None, []) for c in hubspot.calls)


def test_each_change_between_two_rounds_is_its_own_event(config, redis, hubspot, calls):
    # Given a from_= handler for tickets leaving stage 2, and a started poller
    router = Router()
    router.add(recorder(calls, "left_2"), "ticket.propertyChange", name="left_2", property="hs_pipeline_stage",
               from_="2")
    start = started(config, redis, router, hubspot)
    # When the ticket goes 1 -> 2 -> 3 between two rounds
    hubspot.update("tickets", 1, {"hs_pipeline_stage": "2"}, modified_at_ms=start + 100)
    hubspot.update("tickets", 1, {"hs_pipeline_stage": "3"}, modified_at_ms=start + 200)
    poll(config, router)
    # Then both changes were enqueued, oldest first, each with the value before it
    assert [(e["propertyValue"], e["previousValue"], e["occurredAt"]) for e in property_events(config, redis)] == [
        ("2", "1", start + 100), ("3", "2", start + 200)]
    drain(config, router)
    # And the handler saw the 2 -> 3 transition, in one call for the object
    (event,) = calls["left_2"]
    assert [c["propertyValue"] for c in event.changes if c.get("propertyName")] == ["2", "3"]


def test_two_watched_properties_changed_are_two_events(config, redis, hubspot, calls):
    # Given handlers watching the stage and the priority
    router = Router()
    router.add(recorder(calls, "stage"), "ticket.propertyChange", name="stage", property="hs_pipeline_stage")
    router.add(recorder(calls, "priority"), "ticket.propertyChange", name="priority",
               property="hs_ticket_priority", to="HIGH")
    start = started(config, redis, router, hubspot)
    # When one update changes both
    hubspot.update("tickets", 1, {"hs_pipeline_stage": "2", "hs_ticket_priority": "HIGH"},
                   modified_at_ms=start + 100)
    poll(config, router)
    # Then two propertyChange events were enqueued, one per property, and each handler ran once
    assert sorted((e["propertyName"], e["propertyValue"]) for e in property_events(config, redis)) == [
        ("hs_pipeline_stage", "2"), ("hs_ticket_priority", "HIGH")]
    drain(config, router)
    assert len(calls["stage"]) == 1 and len(calls["priority"]) == 1


def test_an_unwatched_property_change_makes_no_property_event(config, redis, hubspot, calls):
    # Given a handler watching the stage only
    router = Router()
    router.add(recorder(calls, "stage"), "ticket.propertyChange", name="stage", property="hs_pipeline_stage")
    start = started(config, redis, router, hubspot)
    # When only the subject changes
    hubspot.update("tickets", 1, {"subject": "Printer fixed"}, modified_at_ms=start + 100)
    poll(config, router)
    # Then the round enqueued the polled event only, and the stage handler did not run
    events = queued(config, redis)
    assert len(events) == 1 and "propertyName" not in events[0]
    drain(config, router)
    assert calls["stage"] == []


def test_a_ticket_created_in_the_window_counts_its_initial_values_as_changes(config, redis, hubspot, calls):
    # Given handlers for tickets that reach stage 1, and that leave any stage for it
    router = Router()
    router.add(recorder(calls, "to_1"), "ticket.propertyChange", name="to_1", property="hs_pipeline_stage", to="1")
    router.add(recorder(calls, "from_any"), "ticket.propertyChange", name="from_any", property="hs_pipeline_stage",
               from_=["1", "2", "3"])
    router.add(recorder(calls, "created"), "ticket.creation", name="created")
    start = started(config, redis, router, hubspot)
    # When a ticket is created in stage 1 after the poller started
    hubspot.add("tickets", 2, {"subject": "New", "hs_pipeline_stage": "1"}, modified_at_ms=start + 100,
                created_at_ms=start + 100)
    poll(config, router)
    drain(config, router)
    # Then its initial stage is a change from nothing: to= fires, from_= does not, creation still fires
    assert [e.object_id for e in calls["to_1"]] == ["2"] and calls["from_any"] == []
    assert [e.subscription_type for e in calls["created"]] == ["ticket.creation"]


def test_a_deleted_ticket_makes_no_property_event(config, redis, hubspot, calls):
    # Given a watched ticket changed, then deleted before the poller reads its history
    router = Router()
    router.add(recorder(calls, "stage"), "ticket.propertyChange", name="stage", property="hs_pipeline_stage")
    start = started(config, redis, router, hubspot)
    hubspot.update("tickets", 1, {"hs_pipeline_stage": "2"}, modified_at_ms=start + 100)
    hubspot.archive("tickets", 1)
    # When the poller runs
    poll(config, router)
    # Then no property event was made for it (the deletion sweep reports deletions)
    assert property_events(config, redis) == []


def test_re_polling_the_same_window_after_a_restart_calls_no_handler_twice(config, redis, hubspot, calls):
    # Given a stage change delivered and handled once
    router = Router()
    router.add(recorder(calls, "stage"), "ticket.propertyChange", name="stage", property="hs_pipeline_stage")
    start = started(config, redis, router, hubspot)
    hubspot.update("tickets", 1, {"hs_pipeline_stage": "2"}, modified_at_ms=start + 100)
    poll(config, router)
    drain(config, router)
    assert len(calls["stage"]) == 1
    # When the poller restarts as if it had crashed before its commit: cursor back at the start, the
    # seen set lost, and it walks the same window again
    redis.delete(keys.poller_seen(config.portal_id, "ticket", "changes"))
    Cursor(redis, config.portal_id, "ticket", "search").reset(start, floor_ms=start)
    poll(config, router)
    poll(config, router)
    drain(config, router)
    # Then the handler was not called again
    assert len(calls["stage"]) == 1


def test_the_start_up_check_accepts_polled_property_handlers_and_refuses_where_impossible():
    # Given property handlers on a polled ticket (searchable) and on conversations without webhooks
    config = Config.from_env({"HUBHOOK_WEBHOOK_TYPES": "contact,deal"})
    tickets = Router()
    tickets.add(print, "ticket.propertyChange", name="closed", property="hs_pipeline_stage", from_="3", to="4")
    threads = Router()
    threads.add(print, "conversation.propertyChange", name="thread", property="status", to="CLOSED")
    # When processes check them, then tickets pass and conversations fail with the reason
    assert tickets.check_against(config) is tickets
    with pytest.raises(RegistrationError, match="no CRM search or property history"):
        threads.check_against(config)


def test_history_changes_when_history_is_truncated_or_empty():
    # Given a ticket stream watching the stage
    stream = Stream(objects.lookup("ticket"), 1, 60.0, watched=("hs_pipeline_stage",))
    truncated = {"id": "5", "propertiesWithHistory": {"hs_pipeline_stage": [
        {"value": "4", "timestamp": "2026-01-01T00:00:03.000Z", "sourceType": "CRM_UI"},
        {"value": "3", "timestamp": "2026-01-01T00:00:02.000Z", "sourceType": "CRM_UI"}]}}
    after = 1767225600000  # 2026-01-01T00:00:00Z: both kept values are newer, older ones were dropped
    # When events are made from it, then each kept value is one event, and the oldest has no known previous
    made = history_changes(stream, "5", truncated, after)
    assert [(e["propertyValue"], e["previousValue"]) for e in made] == [("3", None), ("4", "3")]
    # And a record with no change after the mark, a deleted one and a merged-away id make none
    assert history_changes(stream, "5", truncated, after + 3000) == []
    assert history_changes(stream, "5", None, after) == []
    assert history_changes(stream, "6", truncated, after) == []


def test_inspect_says_which_filter_skipped_a_polled_change(config, redis, hubspot, calls, env):
    # Given a to= handler for tickets reaching stage 4, and a polled move to stage 2
    router = Router()
    router.add(recorder(calls, "solved"), "ticket.propertyChange", name="solved", property="hs_pipeline_stage",
               to="4")
    start = started(config, redis, router, hubspot)
    hubspot.update("tickets", 1, {"hs_pipeline_stage": "2"}, modified_at_ms=start + 100)
    poll(config, router)
    drain(config, router)
    assert calls["solved"] == []
    # When the operator inspects the ticket
    result = hubhook("inspect", "ticket", "1", env=env)
    as_json = [json.loads(line) for line in hubhook("inspect", "ticket", "1", "--json", env=env).stdout.splitlines()]
    # Then it says the change was seen and which handler's filter skipped it
    assert result.returncode == 0, result.stderr
    assert "nothing recorded" not in result.stdout
    assert "hs_pipeline_stage -> '2' at " in result.stdout and "solved skipped (to='4')" in result.stdout
    (seen_entry,) = [e for e in as_json if e["kind"] == "seen"]
    assert seen_entry["skipped"] == [{"handler": "solved", "filter": "to='4'", "change": "hs_pipeline_stage -> '2'",
                                      "occurredAt": start + 100}]
    # And that history stays one bounded list for the object
    assert redis.llen(object_history.history_key("ticket", "1")) <= object_history.HISTORY_LENGTH


def test_inspect_says_which_filter_skipped_a_webhook_change(config, redis, hubspot, calls, env):
    # Given a deal handler for moves to closedwon and one from contractsent, and HubSpot reporting two moves
    router = Router()
    router.add(recorder(calls, "stage_won"), "deal.propertyChange", name="stage_won", property="dealstage",
               to="closedwon")
    router.add(recorder(calls, "signed"), "deal.propertyChange", name="signed", property="dealstage",
               from_="contractsent")
    hubspot.add("deals", 1009, {"dealname": "Big one", "dealstage": "appointmentscheduled"})
    moved_at = parse_ms(hubspot.update("deals", 1009, {"dealstage": "closedlost"})["updatedAt"])
    lost = make_event("deal.propertyChange", 1009, property="dealstage", value="closedlost", occurred_at=moved_at)
    enqueue_delivery(redis, build_queue(config, redis), [lost])
    drain(config, router)
    # When the operator inspects the deal
    result = hubhook("inspect", "deal", "1009", env=env)
    # Then each handler that did not run is named with the filter that skipped the change
    assert result.returncode == 0, result.stderr
    assert calls["stage_won"] == []
    out = result.stdout
    at = iso_utc(moved_at, terminal=True)
    assert f"dealstage -> 'closedlost' at {at}: stage_won skipped (to='closedwon')" in out
    assert "signed skipped (from_='contractsent' (was 'appointmentscheduled'))" in out
