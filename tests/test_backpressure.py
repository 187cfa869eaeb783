"""Back-pressure: above HUBHOOK_MAX_QUEUE_DEPTH pending events the receiver answers 429 + Retry-After."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from webhook_service import Router, lanes
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.app import create_app
from webhook_service.telemetry import backlog
from webhook_service.testing import make_event, signed_delivery

from .conftest import SECRET, drain

PATH = "/webhooks/hubspot"
METRICS_TOKEN = "backpressure-metrics-token"


@pytest.fixture
def limited(config):
    return Config(**{**config.__dict__, "max_queue_depth": 3, "backpressure_retry_after": 42,
                      "metrics_token": METRICS_TOKEN})


def post(client, config, events):
    body, headers = signed_delivery(events, SECRET, config.webhook_url)
    return client.post(PATH, data=body, headers=headers)


def rejected_backpressure(client) -> float:
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    for family in text_string_to_metric_families(scrape.text):
        for sample in family.samples:
            if sample.name == "hubhook_deliveries_rejected_total" and sample.labels == {"reason": "backpressure"}:
                return sample.value
    raise AssertionError("no backpressure sample")


def test_above_the_limit_the_receiver_answers_429_and_enqueues_nothing(limited, redis, hubspot):
    client = create_app(limited).test_client()
    queue = build_queue(limited, redis)
    before = rejected_backpressure(client)
    # Given 3 events pending, the limit
    first = [make_event("contact.creation", i) for i in (1, 2, 3)]
    assert post(client, limited, first).status_code == 200
    assert backlog.read(redis) == 3
    # When HubSpot posts another delivery
    late = [make_event("contact.creation", 4)]
    response = post(client, limited, late)
    # Then it is refused with Retry-After, nothing is enqueued and the change is not marked seen
    assert response.status_code == 429 and response.headers["Retry-After"] == "42"
    assert "3 events are waiting" in response.json["error"]
    assert queue.count == 1 and backlog.read(redis) == 3
    assert rejected_backpressure(client) == before + 1
    # And a redelivery of already-accepted events is still acknowledged (HubSpot can stop retrying it)
    assert post(client, limited, [{**first[0], "attemptNumber": 1}]).status_code == 200
    # When the workers catch up
    hubspot.add("contacts", 4)
    drain(limited, Router())
    # Then the count is back to 0 and HubSpot's retry of the refused delivery is accepted, not a duplicate
    assert backlog.read(redis) == 0
    response = post(client, limited, [{**late[0], "attemptNumber": 1}])
    assert response.status_code == 200 and response.json["enqueued"] == 1


def test_the_count_follows_coalesced_batches_and_failed_jobs(config, redis, hubspot):
    client = create_app(config).test_client()
    # Given five single-event deliveries queued (a worker will take them along in one batch)
    for i in range(1, 6):
        hubspot.add("contacts", i)
        assert post(client, config, [make_event("contact.creation", i)]).status_code == 200
    assert backlog.read(redis) == 5
    # When they are processed
    seen = []
    router = Router()
    router.add(seen.append, "contact.creation")
    drain(config, router)
    # Then every event was handled and none is counted as pending any more
    assert sorted(e.object_id for e in seen) == ["1", "2", "3", "4", "5"]
    assert backlog.read(redis) == 0


def test_a_drifted_count_heals_when_nothing_is_queued(config, redis):
    # Given a count left high by jobs deleted by hand (e.g. in rq-dashboard)
    redis.set(backlog.PENDING_KEY, 500)
    queue = build_queue(config, redis)
    # When a worker's maintenance pass sees an empty queue and nothing running
    assert backlog.reconcile(redis, queue) == 500
    # Then the count is 0, and it never goes below 0
    assert backlog.read(redis) == 0
    assert backlog.done(redis, 7) == 0 and backlog.read(redis) == 0


def test_a_count_with_work_queued_is_not_reset(config, redis):
    client = create_app(config).test_client()
    assert post(client, config, [make_event("contact.creation", 1)]).status_code == 200
    assert backlog.reconcile(redis, build_queue(config, redis)) == 0
    assert backlog.read(redis) == 1


def test_a_portal_over_its_own_limit_gets_429_while_other_portals_are_accepted(config, redis, hubspot):
    # Given HUBHOOK_MAX_PORTAL_DEPTH=3 and portal 1001 with 3 events pending
    limited = Config(**{**config.__dict__, "max_portal_depth": 3, "backpressure_retry_after": 42})
    client = create_app(limited).test_client()
    flooding = [make_event("contact.creation", i, portal_id=1001) for i in (1, 2, 3)]
    assert post(client, limited, flooding).status_code == 200
    # When both portals send one more change
    refused = post(client, limited, [make_event("contact.creation", 4, portal_id=1001)])
    accepted = post(client, limited, [make_event("contact.creation", 5, portal_id=2002)])
    # Then only the flooding portal is refused, its message naming it; the other's change is queued
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "42"
    assert "3 events of portal 1001 are waiting" in refused.json["error"]
    assert accepted.status_code == 200 and backlog.read(redis) == 4
    assert {row["portal"]: row["pending_events"] for row in lanes.rows(redis)} == {"1001": 3, "2002": 1}
    # And once the backlog is processed, the portal is accepted again
    seen = []
    router = Router()
    router.add(seen.append, "contact.*", name="seen")
    for i in range(1, 6):
        hubspot.add("contacts", i)
    drain(limited, router)
    assert len(seen) == 4 and lanes.rows(redis) == []
    assert post(client, limited, [make_event("contact.creation", 4, portal_id=1001)]).status_code == 200
