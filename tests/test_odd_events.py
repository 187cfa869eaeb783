"""One odd event never stalls a delivery: over HTTP to the receiver, then through a real RQ worker.

HubSpot adds object types over time (``object.creation`` with ``objectTypeId`` "0-421" for
appointments, classic names hubhook has no row for), and a signed event may carry a type no API
path or Redis key may ever hold ("../../oauth", "2-1\\n"). The first kind reaches "*" handlers with
the record read through the generic CRM objects API when HubSpot has one; the second is dropped at
the receiver, counted and logged once; the valid events of the same delivery run as usual.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from rq.registry import FailedJobRegistry
from werkzeug.serving import make_server

from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.operator import dead_letters
from webhook_service.receiver.app import create_app
from webhook_service.testing import make_event, post_delivery

from .conftest import METRICS_BEARER, SECRET, drain, free_port

PATH = "/webhooks/hubspot"
MISSING_SCOPES = {"status": "error", "category": "MISSING_SCOPES",
                  "message": "This app hasn't been granted all required scopes to make this call.",
                  "errors": [{"context": {"requiredScopes": ["crm.x.read"]}}]}


@pytest.fixture
def receiver(config) -> Iterator[tuple[str, object]]:
    """The receiver's Flask app over real HTTP on loopback (werkzeug, threaded); yields (URL, config)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    config = dataclasses.replace(config, webhook_url=url)
    server = make_server("127.0.0.1", port, create_app(config), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield url, config
    finally:
        server.shutdown()
        thread.join(5)


def dropped_count(url: str) -> float:
    """``hubhook_events_dropped_total{reason="object_type"}`` as the receiver's /metrics reports it."""
    text = requests.get(url.replace(PATH, "/metrics"), headers=METRICS_BEARER, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "hubhook_events_dropped_total" and sample.labels == {"reason": "object_type"}:
                return sample.value
    raise AssertionError("hubhook_events_dropped_total{reason=object_type} is not exported")


def delivery() -> tuple[list[dict], list[dict]]:
    """One valid contact.creation, events of types hubhook does not know, and events of malformed types."""
    valid = [make_event("contact.creation", 1),
             make_event("object.creation", 77, objectTypeId="0-421"),
             make_event("appointment.creation", 78)]
    poison = [make_event("object.creation", 79, objectTypeId="../../oauth"),
              make_event("object.creation", 80, objectTypeId="2-1\n")]
    return valid, poison


def routers(seen: list) -> Router:
    router = Router()
    router.add(lambda e: seen.append(("welcome", e.object_type, e.object_id, e.record)), "contact.creation",
               name="welcome", properties=["email"])
    router.add(lambda e: seen.append(("everything", e.object_type, e.object_id, e.record)), "*",
               name="everything", properties=["hs_appointment_name"])
    return router


def test_odd_object_types_never_stall_the_valid_events_of_a_delivery(receiver, redis, hubspot, caplog):
    url, config = receiver
    # Given contact 1 and appointment 77 (type id 0-421, which hubhook has no row for) in HubSpot
    hubspot.add("contacts", 1, {"email": "ada@example.com"})
    hubspot.add("0-421", 77, {"hs_appointment_name": "checkup"})
    seen: list = []
    router = routers(seen)
    valid, poison = delivery()
    before = dropped_count(url)
    # When HubSpot posts one delivery holding the valid events and the malformed ones, over HTTP
    with caplog.at_level(logging.WARNING, logger="hubhook.receiver"):
        response = post_delivery(url, valid + poison, SECRET)
    # Then the delivery is acknowledged, the well-formed events are enqueued and the malformed dropped
    assert response.status_code == 200, response.text
    assert response.json()["enqueued"] == 3
    (job,) = build_queue(config, redis).get_jobs()
    assert [e["objectId"] for e in job.args[0]] == [1, 77, 78]
    # counted once each, with one log line for the delivery
    assert dropped_count(url) - before == 2
    drops = [r for r in caplog.records if r.getMessage().startswith("events dropped")]
    assert len(drops) == 1 and drops[0].hubhook["dropped"] == 2
    assert drops[0].hubhook["object_type_ids"] == ["'../../oauth'", "'2-1\\n'"]
    # When a real RQ worker processes the queue
    hubspot.reset_calls()
    drain(config, router)
    # Then the contact handler ran once, and "*" saw every well-formed type as HubSpot named it
    assert [s for s in seen if s[0] == "welcome"] == [("welcome", "contact", "1", seen[0][3])]
    assert seen[0][3]["properties"]["email"] == "ada@example.com"
    everything = {(s[1], s[2]): s[3] for s in seen if s[0] == "everything"}
    assert set(everything) == {("contact", "1"), ("0-421", "77"), ("appointment", "78")}
    # with the record read through the generic objects API when there is one, None when there is no path
    assert everything[("0-421", "77")]["properties"]["hs_appointment_name"] == "checkup"
    assert everything[("appointment", "78")] is None
    assert hubspot.count(path_contains="/crm/objects/2026-09/0-421/batch/read") == 1
    assert not [c for c in hubspot.calls if "oauth" in c.path or "\n" in c.path or "appointment" in c.path]
    # And nothing is parked
    assert FailedJobRegistry(queue=build_queue(config, redis)).count == 0
    assert dead_letters.dead_letters(config) == []


def test_a_parked_delivery_holding_odd_types_replays(receiver, redis, hubspot):
    url, config = receiver
    # Given HubSpot refusing the app's next two record reads (a missing scope parks at once)
    hubspot.add("contacts", 1, {"email": "ada@example.com"})
    hubspot.add("0-421", 77, {"hs_appointment_name": "checkup"})
    hubspot.fail_next(2, 403, body=MISSING_SCOPES, path_contains="/batch/read")
    seen: list = []
    router = routers(seen)
    valid, poison = delivery()
    # When the same mixed delivery is posted and processed
    assert post_delivery(url, valid + poison, SECRET).json()["enqueued"] == 3
    drain(config, router)
    # Then the appointment (nothing to read) ran, and the contact and 0-421 objects were parked
    assert [(s[0], s[1]) for s in seen] == [("everything", "appointment")]
    letters = dead_letters.dead_letters(config)
    assert [(d.handler, d.events) for d in letters] == [(dead_letters.DELIVERY, 1)] * 2
    # When the scope is granted and the dead letters are replayed
    lines = list(dead_letters.replay(config))
    drain(config, router)
    # Then the parked objects reach their handlers once, and the registry is empty
    assert lines[-1] == "2 job(s) requeued"
    assert sorted((s[0], s[1], s[2]) for s in seen[1:]) == [("everything", "0-421", "77"),
                                                             ("everything", "contact", "1"),
                                                             ("welcome", "contact", "1")]
    assert dead_letters.dead_letters(config) == []


def test_a_job_enqueued_before_the_receiver_dropped_malformed_types_still_runs(config, redis, hubspot):
    # Given a delivery job holding a malformed type, as an older receiver enqueued it
    from webhook_service.receiver.intake import enqueue_delivery
    hubspot.add("contacts", 1)
    seen: list = []
    valid, poison = delivery()
    enqueue_delivery(redis, build_queue(config, redis), [valid[0], *poison])
    # When a worker runs it
    drain(config, routers(seen))
    # Then the valid event reached its handlers, the malformed ones none, and nothing is parked
    assert sorted((s[0], s[1], s[2]) for s in seen) == [("everything", "contact", "1"),
                                                         ("welcome", "contact", "1")]
    assert dead_letters.dead_letters(config) == []
