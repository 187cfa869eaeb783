"""Jobs: batch enrichment, one call per handler per object, isolation, dead letters and replay."""
import dataclasses

import pytest
from rq.registry import FailedJobRegistry

from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.operator import dead_letters
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.testing import make_event

from .conftest import drain


def deliver(config, redis, events):
    return enqueue_delivery(redis, build_queue(config, redis), events)


@pytest.fixture
def seen():
    return []


def test_a_mixed_delivery_costs_one_call_per_type_and_association_type(config, redis, hubspot, seen):
    # Given 50 contacts and 50 deals in HubSpot, and handlers that declare their needs
    for i in range(1, 51):
        hubspot.add("contacts", i, {"email": f"c{i}@example.com"})
        hubspot.add("deals", 1000 + i, {"dealname": f"d{i}", "dealstage": "won"})
        hubspot.add("companies", 5000 + i, {"name": f"co{i}"})
        hubspot.associate("deals", 1000 + i, "contacts", i)
        hubspot.associate("deals", 1000 + i, "companies", 5000 + i)
        hubspot.associate("contacts", i, "companies", 5000 + i)
    router = Router()
    router.add(seen.append, "contact.creation", name="welcome", properties=["email"], associations=["companies"])
    router.add(seen.append, "deal.propertyChange", name="stage", property="dealstage",
               properties=["dealname", "dealstage"], associations=["contacts", "companies"])
    events = [make_event("contact.creation", i) for i in range(1, 51)]
    events += [make_event("deal.propertyChange", 1000 + i, property="dealstage", value="won") for i in range(1, 51)]
    # When one 100-event delivery is processed
    deliver(config, redis, events)
    hubspot.reset_calls()
    drain(config, router)
    # Then every handler saw its object once, with the full record and associations
    assert len(seen) == 100
    deal = next(e for e in seen if e.object_id == "1007")
    assert deal.record["properties"]["dealname"] == "d7"
    assert deal.associations == {"contacts": ["7"], "companies": ["5007"]}
    assert deal.subscription_type == "deal.propertyChange" and deal.source == "webhook"
    contact = next(e for e in seen if e.object_id == "7")
    assert contact.associations == {"companies": ["5007"]} and contact.portal_id == 62515
    # And it cost 2 record reads + 3 association reads: 0.05 calls per event
    assert hubspot.count(path_contains="/batch/read") == hubspot.count() == 5


def test_many_changes_of_one_object_are_one_call_with_the_union_of_properties(config, redis, hubspot, seen):
    hubspot.add("deals", 9, {"dealname": "x", "amount": "10", "dealstage": "a"})
    router = Router()
    router.add(seen.append, "deal.propertyChange", name="a", properties=["dealname"])
    router.add(seen.append, "deal.*", name="b", properties=["amount"])
    deliver(config, redis, [make_event("deal.propertyChange", 9, property="dealstage", value=v, occurred_at=t)
                            for t, v in ((3, "c"), (1, "a"), (2, "b"))])
    hubspot.reset_calls()
    drain(config, router)
    assert [e.handler for e in seen] == ["a", "b"]
    assert [c["propertyValue"] for c in seen[0].changes] == ["a", "b", "c"]
    (call,) = hubspot.calls
    assert set(call.body["properties"]) >= {"dealname", "amount", "dealstage"}


def test_a_failing_handler_is_retried_alone_then_dead_lettered_and_replayed(config, redis, hubspot, seen):
    # Given two handlers on the same change, one of which fails until it is fixed
    hubspot.add("contacts", 1, {"email": "a@x"})
    broken = {"on": True}

    def flaky(event):
        if broken["on"]:
            raise RuntimeError("boom")
        seen.append(("flaky", event.object_id))

    router = Router()
    router.add(lambda e: seen.append(("steady", e.object_id)), "contact.creation", name="steady")
    router.add(flaky, "contact.creation", name="flaky")
    # When the delivery is processed and the failing handler exhausts its retries
    deliver(config, redis, [make_event("contact.creation", 1)])
    drain(config, router)
    # Then the steady handler ran exactly once and the failure is parked under the handler's name
    assert seen == [("steady", "1")]
    assert dead_letters.counts_by_handler(config) == {"flaky": 1}
    # When the handler is fixed and its dead letters are replayed by name
    broken["on"] = False
    lines = list(dead_letters.replay(config, handler="flaky"))
    drain(config, router)
    # Then only the failing handler ran again, and the registry is empty
    assert lines[-1] == "1 job(s) requeued"
    assert seen == [("steady", "1"), ("flaky", "1")]
    assert FailedJobRegistry(queue=build_queue(config)).count == 0
    assert list(dead_letters.replay(config))[0].startswith("nothing to replay")


def test_replay_of_an_unknown_handler_names_what_exists(config, redis, hubspot):
    router = Router()
    router.add(lambda e: 1 / 0, "contact.creation", name="divider")
    hubspot.add("contacts", 1)
    deliver(config, redis, [make_event("contact.creation", 1)])
    drain(config, router)
    assert "there are dead letters for: divider" in list(dead_letters.replay(config, handler="nope"))[0]


def test_a_handler_parked_after_its_retries_logs_one_line_saying_how_to_replay_it(config, redis, hubspot, caplog):
    # Given a handler that always fails
    router = Router()
    router.add(lambda e: 1 / 0, "contact.creation", name="divider")
    hubspot.add("contacts", 1)
    # When its retries are spent and the worker parks it
    deliver(config, redis, [make_event("contact.creation", 1)])
    with caplog.at_level("WARNING", logger="hubhook.worker"):
        drain(config, router)
    # Then one warning names the handler and the command that runs it again
    parked = [r.getMessage() for r in caplog.records if "parked in the dead-letter registry" in r.getMessage()]
    assert len(parked) == 1, parked
    assert parked[0].startswith("handler divider for contact")
    assert parked[0].endswith("then `hubhook replay --handler divider`")


def test_deleted_objects_get_no_record_and_cost_no_call(config, redis, hubspot, seen):
    router = Router()
    router.add(seen.append, "deal.*", associations=["contacts"])
    deliver(config, redis, [make_event("deal.propertyChange", 3, property="x", occurred_at=1),
                            make_event("deal.deletion", 3, occurred_at=2)])
    hubspot.reset_calls()
    drain(config, router)
    (event,) = seen
    assert event.record is None and event.subscription_type == "deal.deletion"
    assert event.associations == {"contacts": []}
    assert hubspot.count() == 0


def test_missing_objects_are_not_errors(config, redis, hubspot, seen):
    hubspot.add("contacts", 1)
    router = Router()
    router.add(seen.append, "contact.creation", properties=["email"])
    deliver(config, redis, [make_event("contact.creation", 1), make_event("contact.creation", 404)])
    drain(config, router)
    records = {e.object_id: e.record for e in seen}
    assert records["1"]["id"] == "1" and records["404"] is None
    assert dead_letters.dead_letters(config) == []


def test_merged_objects_get_the_surviving_record(config, redis, hubspot, seen):
    hubspot.add("contacts", 10, {"email": "a@x"})
    hubspot.add("contacts", 11, {"email": "b@x"})
    new_id = hubspot.merge("contacts", 10, 11)
    router = Router()
    router.add(seen.append, "contact.merge", properties=["email"])
    deliver(config, redis, [make_event("contact.merge", 10, primaryObjectId=10, mergedObjectIds=[11],
                                       newObjectId=int(new_id), numberOfPropertiesMoved=3)])
    drain(config, router)
    (event,) = seen
    assert event.record["id"] == new_id != "10"
    assert event.merged_object_ids == ["11"]


def test_conversation_threads_come_from_the_conversations_api(config, redis, hubspot, seen):
    hubspot.add_thread(77, status="OPEN")
    router = Router()
    router.add(seen.append, "conversation.newMessage")
    deliver(config, redis, [make_event("conversation.newMessage", 77, messageId="m1", messageType="MESSAGE")])
    drain(config, router)
    assert seen[0].record["id"] == "77" and seen[0].record["status"] == "OPEN"
    assert hubspot.count(path_contains="/threads/77") == 1


def test_generic_object_events_reach_handlers_of_the_concrete_type(config, redis, hubspot, seen):
    hubspot.add("tickets", 5, {"subject": "help"})
    router = Router()
    router.add(seen.append, "ticket.creation", properties=["subject"])
    deliver(config, redis, [make_event("object.creation", 5, objectTypeId="0-5")])
    drain(config, router)
    assert seen[0].object_type == "ticket" and seen[0].record["properties"]["subject"] == "help"


def test_transient_hubspot_errors_are_retried_by_the_client(config, redis, hubspot, seen):
    hubspot.add("contacts", 1)
    hubspot.fail_next(2, 502)
    router = Router()
    router.add(seen.append, "contact.creation")
    deliver(config, redis, [make_event("contact.creation", 1)])
    drain(config, router)
    assert seen[0].record["id"] == "1"


def test_api_version_v3_uses_the_legacy_v3_and_v4_paths(config, redis, hubspot, seen):
    # Given HUBSPOT_API_VERSION=v3 and a deal with a contact
    hubspot.add("deals", 31, {"dealname": "legacy"})
    hubspot.add("contacts", 32, {"email": "l@example.com"})
    hubspot.associate("deals", 31, "contacts", 32)
    legacy = dataclasses.replace(config, api_version="v3")
    router = Router()
    router.add(seen.append, "deal.creation", name="legacy", properties=["dealname"], associations=["contacts"])
    # When a delivery is processed
    deliver(legacy, redis, [make_event("deal.creation", 31)])
    hubspot.reset_calls()
    drain(legacy, router)
    # Then the handler got the record and its associations, read from /crm/v3 and /crm/v4 only
    assert [(e.record["properties"]["dealname"], e.associations) for e in seen] == [("legacy", {"contacts": ["32"]})]
    assert hubspot.count(path_contains="/crm/v3/objects/deals/batch/read") == 1
    assert hubspot.count(path_contains="/crm/v4/associations/deals/contacts/batch/read") == 1
    assert hubspot.count(path_contains="2026-09") == 0
