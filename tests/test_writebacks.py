"""Write-backs: ``event.hubspot`` is the worker's rate-limited, retrying client bound to the event's
portal; ``event.lock`` guards work that must not run twice at once."""
import logging

from redis.exceptions import LockError

from jobs.hubspot.client import HubSpotClient
from webhook_service import Router
from webhook_service.errors import HubSpotAPIError
from webhook_service.operator import dead_letters
from webhook_service.testing import make_event

from .conftest import drain
from .quota_support import deliver


def test_a_handler_creates_updates_and_associates_records(config, redis, hubspot):
    # Given a contact, a company and a handler that writes back to HubSpot
    hubspot.add("contacts", 1, {"email": "ada@example.com"})
    hubspot.add("companies", 9, {"name": "Acme"})
    found = {}

    def upsell(event):
        hs = event.hubspot
        found["deal"] = hs.create("deals", {"dealname": "Upsell", "amount": "100"},
                                  associations={"contacts": [event.object_id]})
        hs.update("contacts", event.object_id, {"lifecyclestage": "customer"})
        hs.batch_update("companies", {"9": {"name": "Acme Inc"}})
        hs.associate("contacts", event.object_id, "companies", "9")
        found["contact"] = hs.get("contacts", event.object_id, ["lifecyclestage"])
        found["companies"] = hs.batch_read("companies", ["9"], ["name"])

    router = Router()
    router.add(upsell, "contact.creation", name="upsell")
    deliver(config, redis, [make_event("contact.creation", 1)])
    hubspot.reset_calls()
    # When the handler runs
    drain(config, router)
    # Then its writes reached HubSpot through the dated API, and its reads see them
    writes = [(c.method, c.path, c.status) for c in hubspot.calls if c.method != "GET" and "read" not in c.path]
    deal_id = found["deal"]["id"]
    assert writes == [("POST", "/crm/objects/2026-09/deals", 201),
                      ("PATCH", "/crm/objects/2026-09/contacts/1", 200),
                      ("POST", "/crm/objects/2026-09/companies/batch/update", 200),
                      ("PUT", "/crm/objects/2026-09/contacts/1/associations/default/companies/9", 200)]
    assert found["contact"]["properties"]["lifecyclestage"] == "customer"
    assert found["companies"]["9"]["properties"]["name"] == "Acme Inc"
    client = HubSpotClient(config)
    assert client.batch_associations("deals", "contacts", [deal_id]) == {deal_id: ["1"]}
    assert client.batch_associations("contacts", "companies", ["1"]) == {"1": ["9"]}


def test_a_rate_limited_write_back_is_retried_later_without_spending_retries(config, redis, hubspot, caplog):
    # Given a handler whose update meets three 429s in a row (the fixture allows one handler retry)
    hubspot.add("contacts", 1)
    attempts = []

    def mark(event):
        attempts.append(event.object_id)
        event.hubspot.update("contacts", event.object_id, {"hs_lead_status": "OPEN"})

    router = Router()
    router.add(mark, "contact.creation", name="mark")
    deliver(config, redis, [make_event("contact.creation", 1)])
    hubspot.fail_next(3, 429, path_contains="contacts/1", headers={"Retry-After": "0.1"})
    # When the work is processed
    with caplog.at_level(logging.INFO):
        drain(config, router)
    # Then the fourth attempt wrote it, nothing is parked, and no traceback was logged for a 429
    assert len(attempts) == 4
    assert HubSpotClient(config).get("contacts", "1", ["hs_lead_status"])["properties"]["hs_lead_status"] == "OPEN"
    assert dead_letters.dead_letters(config) == [] and "Traceback" not in caplog.text


def test_event_lock_excludes_a_second_holder_until_released(config, redis, hubspot):
    hubspot.add("contacts", 1)
    observed = {}

    def create_list_once(event):
        with event.lock("create-list", timeout=5):
            try:
                with event.lock("create-list", timeout=5, blocking_timeout=0.1):
                    observed["second holder"] = True
            except LockError:
                observed["second holder"] = False
        with event.lock("create-list", timeout=5, blocking_timeout=0.1):
            observed["after release"] = True

    router = Router()
    router.add(create_list_once, "contact.creation", name="lists")
    deliver(config, redis, [make_event("contact.creation", 1)])
    drain(config, router)
    assert observed == {"second holder": False, "after release": True}


def test_a_write_back_hubspot_would_refuse_fails_in_the_test_too(config, redis, hubspot, caplog):
    # Given a handler that writes a property the portal does not have (a typo of hs_lead_status)
    hubspot.add("contacts", 1)
    errors = []

    def mark(event):
        try:
            event.hubspot.update("contacts", event.object_id, {"hs_leadstatus": "OPEN"})
        except HubSpotAPIError as exc:
            errors.append(exc)
            raise

    router = Router()
    router.add(mark, "contact.creation", name="mark")
    deliver(config, redis, [make_event("contact.creation", 1)])
    # When the work is processed
    with caplog.at_level(logging.INFO):
        drain(config, router)
    # Then HubSpot's 400 reached the handler on each attempt, naming the property, and the handler was parked
    assert errors and all(e.status == 400 and e.category == "VALIDATION_ERROR" for e in errors)
    assert "PROPERTY_DOESNT_EXIST" in str(errors[0]) and "hs_leadstatus" in str(errors[0])
    (letter,) = dead_letters.dead_letters(config)
    assert letter.handler == "mark" and "hs_leadstatus" in letter.error
    assert "hs_leadstatus" not in HubSpotClient(config).get("contacts", "1", ["hs_leadstatus"])["properties"]
