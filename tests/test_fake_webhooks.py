"""The fake HubSpot sends the webhooks a portal sends its app on every write: signed, batched by at
most 100, retried, with ``changeSource``/``sourceId`` naming the writer, so a handler that writes back
to HubSpot sees the webhook its own write causes and echo suppression can drop it."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import requests

from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.testing.fake_hubspot.webhooks import EMIT_HEADER

from .conftest import SECRET, TOKEN, drain, free_port
from .ops_support import wait_until
from .webhook_support import running_receiver

APP_ID = 54321
QUICK = (0.1, 0.2, 0.2, 0.2, 0.2)
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def kinds(events: list[dict]) -> list[tuple]:
    return [(e["subscriptionType"], e.get("propertyName"), e.get("propertyValue"), e["changeSource"], e["sourceId"])
            for e in events]


def test_a_handlers_write_back_comes_back_as_an_integration_webhook_that_echo_suppression_drops(config, hubspot):
    # Given hubhook's receiver as the fake's webhook target, echo suppression naming the app, and a
    # handler that qualifies every new contact by writing back to HubSpot
    config = dataclasses.replace(config, ignore_sources=(str(APP_ID),))
    stage_changes = []
    router = Router()

    @router.on("contact.creation")
    def qualify(event):
        event.hubspot.update("contacts", event.object_id, {"lifecyclestage": "lead"})

    @router.on("contact.propertyChange", property="lifecyclestage", properties=["lifecyclestage"])
    def stage_changed(event):
        stage_changes.append(event.properties.get("lifecyclestage"))

    with running_receiver(config) as (url, config):
        emitter = hubspot.emit_webhooks_to(url, SECRET, retry_delays=QUICK)
        # When a user creates a contact in HubSpot and the worker runs the handlers
        contact = hubspot.add("contacts", properties={"email": "ada@example.com"})["id"]
        assert emitter.wait_idle()
        drain(config, router)
        assert emitter.wait_idle()
        # Then the handler's own write came back as a webhook from the app, accepted by the receiver ...
        echo = [e for e in emitter.events if e.get("propertyName") == "lifecyclestage"]
        assert kinds(echo) == [("contact.propertyChange", "lifecyclestage", "lead", "INTEGRATION", str(APP_ID))]
        assert echo[0]["objectId"] == int(contact) and echo[0]["appId"] == APP_ID
        # ... and echo suppression kept stage_changed from running on it
        drain(config, router)
        assert stage_changes == []
        # When a user changes the stage in HubSpot's UI
        hubspot.update("contacts", contact, {"lifecyclestage": "customer"})
        assert emitter.wait_idle()
        drain(config, router)
    # Then that change does reach the handler
    assert stage_changes == ["customer"]
    assert all(d.status == 204 or d.status == 200 for d in emitter.deliveries)


def test_every_api_write_sends_the_events_hubspot_documents(config, hubspot):
    # Given the fake sending its webhooks to hubhook's receiver
    api = requests.Session()
    api.headers.update(BEARER)
    with running_receiver(config) as (url, config):
        emitter = hubspot.emit_webhooks_to(url, SECRET, retry_delays=QUICK)
        base = f"{hubspot.url}/crm/objects/2026-09"
        # When an app creates, updates, associates, deletes, merges and GDPR-deletes records through the API
        deal = api.post(f"{base}/deals", json={"properties": {"dealname": "Renewal"}}).json()["id"]
        api.patch(f"{base}/deals/{deal}", json={"properties": {"dealname": "Renewal", "amount": "10"}})
        one = api.post(f"{base}/contacts", json={"properties": {}}).json()["id"]
        two = api.post(f"{base}/contacts", json={"properties": {}}).json()["id"]
        assert api.put(f"{base}/deals/{deal}/associations/default/contacts/{one}").status_code == 200
        assert api.delete(f"{base}/deals/{deal}").status_code == 204
        merged = api.post(f"{base}/contacts/merge", json={"primaryObjectId": one, "objectIdToMerge": two}).json()["id"]
        assert api.post(f"{hubspot.url}/crm/v3/objects/contacts/gdpr-delete",
                        json={"objectId": merged}).status_code == 204
        hubspot.restore("deals", deal)    # the recycling bin, in HubSpot's UI
        assert emitter.wait_idle()
    # Then the receiver accepted each of HubSpot's events, attributed to the app or to the UI user
    app, ui = ("INTEGRATION", str(APP_ID)), ("CRM_UI", "userId:1001")
    assert kinds(emitter.events) == [
        ("deal.creation", None, None, *app), ("deal.propertyChange", "dealname", "Renewal", *app),
        ("deal.propertyChange", "amount", "10", *app),            # dealname did not change: no event
        ("contact.creation", None, None, *app), ("contact.creation", None, None, *app),
        ("deal.associationChange", None, None, *app), ("contact.associationChange", None, None, *app),
        ("deal.deletion", None, None, *app), ("contact.merge", None, None, *app),
        ("contact.privacyDeletion", None, None, *app), ("contact.deletion", None, None, *app),
        ("deal.restore", None, None, *ui)]
    by_type = {e["subscriptionType"]: e for e in emitter.events}
    assert by_type["deal.associationChange"]["associationType"] == "DEAL_TO_CONTACT"
    assert by_type["deal.associationChange"]["toObjectId"] == int(one)
    assert by_type["contact.merge"]["primaryObjectId"] == int(one)
    assert by_type["contact.merge"]["mergedObjectIds"] == [int(two)]
    assert by_type["contact.merge"]["newObjectId"] == int(merged)
    assert {e["portalId"] for e in emitter.events} == {62515}
    assert all(d.status == 200 for d in emitter.deliveries)


def test_a_custom_object_sends_generic_events_with_its_type_id(config, hubspot):
    # Given the fake sending webhooks
    with running_receiver(config) as (url, config):
        emitter = hubspot.emit_webhooks_to(url, SECRET, retry_delays=QUICK)
        # When an app creates a record of a custom object type
        made = requests.post(f"{hubspot.url}/crm/v3/objects/2-1234", json={"properties": {}}, headers=BEARER)
        assert emitter.wait_idle()
    # Then the event is the generic object.creation, naming the type by its id
    assert [(e["subscriptionType"], e["objectTypeId"], e["objectId"]) for e in emitter.events] == \
        [("object.creation", "2-1234", int(made.json()["id"]))]


def test_batches_hold_at_most_100_events_and_the_subscription_filter_applies(config, hubspot):
    # Given the fake subscribed to deal creations only
    with running_receiver(config) as (url, config):
        emitter = hubspot.emit_webhooks_to(url, SECRET, retry_delays=QUICK, subscriptions=["deal.creation"])
        # When 150 deals (with properties) and a contact are created in two batch calls and one create
        for count in (100, 50):
            inputs = [{"properties": {"dealname": f"d{i}"}} for i in range(count)]
            made = requests.post(f"{hubspot.url}/crm/v3/objects/deals/batch/create", json={"inputs": inputs},
                                 headers=BEARER)
            assert made.status_code == 201
        requests.post(f"{hubspot.url}/crm/v3/objects/contacts", json={"properties": {}}, headers=BEARER)
        assert emitter.wait_idle()
    # Then 150 deal.creation events arrived, no request held more than 100, and nothing else was sent
    assert len(emitter.events) == 150 and {e["subscriptionType"] for e in emitter.events} == {"deal.creation"}
    assert max(len(d.events) for d in emitter.deliveries) <= 100
    assert len(emitter.deliveries) >= 2


def test_the_fake_only_header_silences_one_write(config, hubspot):
    # Given the fake sending webhooks
    with running_receiver(config) as (url, config):
        emitter = hubspot.emit_webhooks_to(url, SECRET, retry_delays=QUICK)
        # When one create carries X-Fake-HubSpot-Emit: none and the next one does not
        quiet = requests.post(f"{hubspot.url}/crm/v3/objects/deals", json={"properties": {}},
                              headers={**BEARER, EMIT_HEADER: "none"}).json()["id"]
        loud = requests.post(f"{hubspot.url}/crm/v3/objects/deals", json={"properties": {}},
                             headers=BEARER).json()["id"]
        assert emitter.wait_idle()
    # Then only the second one was sent
    assert [e["objectId"] for e in emitter.events] == [int(loud)]
    assert int(quiet) != int(loud)


def test_a_failed_delivery_is_retried_with_the_next_attempt_number(config, hubspot):
    # Given the fake's webhook target on a port where nothing listens yet
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/hubspot"
    emitter = hubspot.emit_webhooks_to(url, SECRET, retry_delays=(0.2,) * 10)
    # When a deal is created, its first delivery fails, and then the receiver starts there
    hubspot.add("deals", properties={})
    wait_until(lambda: emitter.deliveries, 10, "the first delivery attempt")
    with running_receiver(config, port) as (_, config):
        assert emitter.wait_idle(20)
    # Then the refused attempt is followed by an accepted one carrying attemptNumber >= 1
    first, last = emitter.deliveries[0], emitter.deliveries[-1]
    assert first.status is None and first.error == "ConnectionError" and first.attempt == 0
    assert last.status == 200 and last.attempt >= 1
    assert {e["attemptNumber"] for e in last.events} == {last.attempt}
    assert [e["eventId"] for e in last.events] == [e["eventId"] for e in first.events]


def test_the_standalone_fake_sends_webhooks_with_the_secret_from_the_environment(config, env, tmp_path):
    # Given the fake started from a shell with --webhook-url and HUBSPOT_CLIENT_SECRET, and hubhook's receiver
    seen = []
    router = Router()
    router.add(lambda e: seen.append((e.object_id, e.subscription_type)), "deal.creation", name="new_deal")
    port = free_port()
    with running_receiver(config) as (url, config):
        fake = subprocess.Popen([sys.executable, "-m", "webhook_service.testing.fake_hubspot", "--port", str(port),
                                 "--webhook-url", url, "--webhook-subscriptions", "deal.creation"],
                                env={**env, "HUBSPOT_CLIENT_SECRET": SECRET}, stdout=subprocess.PIPE, text=True)
        try:
            assert fake.stdout is not None
            lines = [fake.stdout.readline(), fake.stdout.readline()]
            assert lines[0].startswith(f"webhooks of every write go to {url}") and "serving on" in lines[1]
            # When an app creates a deal through the fake's API
            deal = requests.post(f"http://127.0.0.1:{port}/crm/v3/objects/deals", json={"properties": {}},
                                 headers=BEARER).json()["id"]
            # Then the signed delivery reaches the receiver, and the worker runs the handler
            wait_until(lambda: build_queue(config).count, 10, "the fake's delivery to be enqueued")
            drain(config, router)
        finally:
            fake.terminate()
            fake.wait(10)
    assert seen == [(deal, "deal.creation")]


def test_the_standalone_fake_refuses_a_webhook_url_without_a_secret(env):
    # When the fake is started with --webhook-url but no HUBSPOT_CLIENT_SECRET
    clean = {k: v for k, v in env.items() if k != "HUBSPOT_CLIENT_SECRET"}
    done = subprocess.run([sys.executable, "-m", "webhook_service.testing.fake_hubspot", "--port", "0",
                           "--webhook-url", "http://127.0.0.1:9/webhooks/hubspot"],
                          env=clean, capture_output=True, text=True, timeout=30)
    # Then it says, in one line, what to set, and exits non-zero
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["fake HubSpot: --webhook-url needs HUBSPOT_CLIENT_SECRET set to the client "
                                        "secret your receiver verifies with (export it, then run this again)"]
