"""``hubhook trigger TYPE``: a real change in the (fake) HubSpot, then the signed delivery HubSpot would
send, through hubhook's real receiver and a real RQ worker to the handlers, as a user would run it."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from webhook_service import Router
from webhook_service.connection import queue as build_queue

from .conftest import SECRET, drain, free_port
from .ops_support import hubhook
from .webhook_support import running_receiver


@pytest.fixture
def stack(config, env, hubspot) -> Iterator[tuple[dict, object]]:
    """hubhook's receiver on a free port, the fake HubSpot emitting its own webhooks there too (so a
    second delivery for trigger's own writes would show), and the environment `hubhook trigger` reads."""
    with running_receiver(config) as (url, config):
        hubspot.emit_webhooks_to(url, SECRET, retry_delays=())
        yield {**env, "HUBHOOK_WEBHOOK_URL": url}, config


def trigger(env: dict, *args: str):
    return hubhook("trigger", *args, env=env)


def test_trigger_creation_creates_the_object_and_its_handler_runs_once(stack, hubspot):
    # Given a handler on deal creations
    env, config = stack
    seen = []
    router = Router()
    router.add(lambda e: seen.append((e.object_id, e.properties["dealname"])), "deal.creation", name="new_deal")
    # When a user triggers deal.creation
    done = trigger(env, "deal.creation")
    # Then the deal exists in HubSpot, one line said each step, and the receiver took the delivery
    assert done.returncode == 0, done.stderr
    created, sent = done.stdout.splitlines()
    deal_id = created.split()[2]
    assert created.startswith(f"created deal {deal_id} (dealname=hubhook trigger ")
    assert sent == f"sent 1 event(s) (deal.creation) to {env['HUBHOOK_WEBHOOK_URL']}: 200"
    drain(config, router)
    assert [object_id for object_id, _ in seen] == [deal_id]
    assert f"(dealname={seen[0][1]}, " in created
    # ... and the fake sent no webhook of its own for trigger's write (the handler ran once)
    assert hubspot.webhooks.wait_idle() and hubspot.webhooks.deliveries == []


def test_trigger_property_change_with_set_writes_the_value_the_event_carries(stack, hubspot):
    # Given a handler on deals reaching closedwon
    env, config = stack
    won = []
    router = Router()
    router.add(lambda e: won.append((e.object_id, e.properties["dealstage"])), "deal.propertyChange",
               name="won", property="dealstage", to="closedwon", properties=["dealstage"])
    # When a user triggers a dealstage change to closedwon
    done = trigger(env, "deal.propertyChange", "--set", "dealstage=closedwon")
    # Then a deal was created, then updated, and the handler saw the new stage in the record
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    deal_id = lines[0].split()[2]
    assert lines[1] == f"updated deal {deal_id}: dealstage=closedwon"
    assert lines[2].startswith("sent 1 event(s) (deal.propertyChange)")
    drain(config, router)
    assert won == [(deal_id, "closedwon")]
    assert hubspot.webhooks.wait_idle() and hubspot.webhooks.events == []


def test_trigger_events_3_sends_three_objects_in_one_delivery(stack, redis):
    # Given a handler on contact creations
    env, config = stack
    seen = []
    router = Router()
    router.add(lambda e: seen.append(e.object_id), "contact.creation", name="welcome")
    # When a user triggers three contact creations
    done = trigger(env, "contact.creation", "--events", "3")
    # Then three contacts were created and sent in one delivery: one job in the queue
    assert done.returncode == 0, done.stderr
    created = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("created contact")]
    assert len(set(created)) == 3
    assert done.stdout.splitlines()[-1].startswith("sent 3 event(s) (contact.creation)")
    assert build_queue(config).count == 1
    drain(config, router)
    assert sorted(seen) == sorted(created)


def test_an_integration_change_is_dropped_by_echo_suppression(stack, hubspot):
    # Given echo suppression naming the app 777 and a handler on contact name changes
    env, config = stack
    config = dataclasses.replace(config, ignore_sources=("777",))
    seen = []
    router = Router()
    router.add(lambda e: seen.append(e.object_id), "contact.propertyChange", name="renamed", property="firstname")
    # When the change is triggered as made by app 777, then as made by a user
    echo = trigger(env, "contact.propertyChange", "--set", "firstname=Ada", "--change-source", "INTEGRATION",
                   "--source-id", "777")
    drain(config, router)
    user = trigger(env, "contact.propertyChange", "--set", "firstname=Grace")
    drain(config, router)
    # Then both were delivered, and only the user's change reached the handler
    assert echo.returncode == 0 and user.returncode == 0, echo.stderr + user.stderr
    user_contact = user.stdout.splitlines()[0].split()[2]
    assert seen == [user_contact]


@pytest.mark.parametrize("custom", ["p_cars", "2-1234"])
def test_a_custom_object_named_by_its_string_id(stack, custom):
    # Given a handler on creations of a custom object type
    env, config = stack
    seen = []
    router = Router()
    router.add(lambda e: seen.append((e.object_type, e.object_id, e.record is not None)), f"{custom}.creation",
               name="car")
    # When a user triggers its creation
    done = trigger(env, f"{custom}.creation")
    # Then the record exists and the generic object.creation event (objectTypeId = the type) reached the handler
    assert done.returncode == 0, done.stderr
    record_id = done.stdout.splitlines()[0].split()[2]
    assert done.stdout.splitlines()[-1].startswith("sent 1 event(s) (object.creation)")
    drain(config, router)
    assert seen == [(custom, record_id, True)]


def test_a_receiver_that_is_down_is_one_line_saying_what_to_do(env, hubspot):
    # Given no receiver listening where trigger sends
    url = f"http://127.0.0.1:{free_port()}/webhooks/hubspot"
    # When a user triggers an event
    done = trigger({**env, "HUBHOOK_WEBHOOK_URL": url}, "deal.creation")
    # Then one line says the receiver is down and how to start it, exit status 1
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"hubhook: error: could not reach the receiver at {url} (ConnectionError): start it (`hubhook run`, "
        "or `hubhook web` and `hubhook worker`), or pass --url"]


@pytest.mark.parametrize("bad, says", [
    ("dael.creation", "unknown type 'dael.creation': use <object>.<action>"),
    ("deal.restore", "cannot trigger 'deal.restore' (only HubSpot's UI restores a record"),
    ("deal", "unknown type 'deal'"),
])
def test_an_unknown_type_is_one_line_and_writes_nothing(env, hubspot, bad, says):
    # When a user triggers a type trigger cannot make
    done = trigger(env, bad)
    # Then one line names the problem and the choices, exit status 1, and HubSpot saw no write
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(f"hubhook: error: {says}")
    assert hubspot.count(method="POST") == 0


def test_a_hubspot_refusal_is_one_line(stack, hubspot):
    # When a user sets a property the portal does not have
    env, _ = stack
    done = trigger(env, "deal.creation", "--set", "no_such_property=1")
    # Then HubSpot's 400 is one line that says what to check, exit status 1
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("hubhook: error: HubSpot refused creating a deal (400 VALIDATION_ERROR: ")
    assert "no_such_property" in done.stderr and done.stderr.rstrip().endswith("check the --set names and values")
