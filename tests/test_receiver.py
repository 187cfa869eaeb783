"""The receiver: verify, validate, drop redeliveries, enqueue one job per delivery, answer precisely."""
import json

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from webhook_service.app import create_app
from webhook_service.config import Config
from webhook_service.testing import make_event, signed_delivery

from .conftest import SECRET, free_port

PATH = "/webhooks/hubspot"


@pytest.fixture
def client(config):
    return create_app(config).test_client()


@pytest.fixture
def queue(config, redis):
    return Queue(config.queue_name, connection=redis, serializer=JSONSerializer)


def post(client, config, events, *, secret=SECRET, headers=None, body=None):
    signed_body, signed_headers = signed_delivery(events if body is None else body, secret, config.webhook_url)
    return client.post(PATH, data=signed_body, headers={**signed_headers, **(headers or {})})


def test_a_signed_delivery_becomes_one_job(client, config, queue):
    # Given a delivery of three events
    events = [make_event("contact.creation", i) for i in (1, 2, 3)]
    # When HubSpot posts it
    response = post(client, config, events)
    # Then it is acknowledged and exactly one job holds all three events
    assert response.status_code == 200, response.json
    assert response.json["enqueued"] == 3
    (job,) = queue.get_jobs()
    assert job.func_name == "jobs.process.process_delivery"
    assert [e["objectId"] for e in job.args[0]] == [1, 2, 3]


def test_redeliveries_are_dropped_before_they_are_enqueued(client, config, queue):
    # Given a delivery that was accepted once
    events = [make_event("deal.propertyChange", 7, property="dealstage", value="won")]
    assert post(client, config, events).json["enqueued"] == 1
    # When HubSpot sends it again with a higher attemptNumber, plus one new event
    retry = [{**events[0], "attemptNumber": 1}, make_event("deal.creation", 8)]
    response = post(client, config, retry)
    # Then only the new event is enqueued
    assert response.status_code == 200
    assert (response.json["enqueued"], response.json["duplicates"]) == (1, 1)
    assert len(queue.get_jobs()) == 2
    # And a delivery that is all duplicates enqueues nothing
    assert post(client, config, retry).json["enqueued"] == 0
    assert len(queue.get_jobs()) == 2


def test_same_event_id_for_different_changes_is_not_a_duplicate(client, config, queue):
    first = make_event("contact.propertyChange", 1, property="email", value="a@x", event_id=5)
    second = make_event("contact.propertyChange", 1, property="email", value="b@x", event_id=5)
    assert post(client, config, [first, second]).json["enqueued"] == 2


def test_the_old_event_type_key_and_official_samples_are_accepted(client, config, queue):
    for sample in ("webhook_v3_docs_example_contact_propertyChange_and_creation.json",
                   "webhook_sensitive_data_contact_propertyChange_example.json"):
        body = (pytest.importorskip("pathlib").Path(__file__).parent / "data" / sample).read_bytes()
        response = post(client, config, None, body=body)
        assert response.status_code == 200, response.json
    types = [e["subscriptionType"] for job in queue.get_jobs() for e in job.args[0]]
    assert types == ["contact.propertyChange", "contact.creation", "contact.propertyChange"]


def test_unknown_extra_fields_are_kept(client, config, queue):
    event = make_event("object.creation", 4, objectTypeId="2-123", isSensitive=False, brandNew={"x": 1})
    assert post(client, config, [event]).status_code == 200
    assert queue.get_jobs()[0].args[0][0]["brandNew"] == {"x": 1}


@pytest.mark.parametrize("mutate, reason", [
    (lambda h: h.pop("X-HubSpot-Signature-v3") and h.pop("X-HubSpot-Signature"), "missing"),
    (lambda h: h.update({"X-HubSpot-Signature-v3": "AAAA"}), "does not match"),
    (lambda h: h.update({"X-HubSpot-Request-Timestamp": "1000"}), "old"),
    (lambda h: h.update({"X-HubSpot-Request-Timestamp": str(10**13)}), "future"),
    (lambda h: h.update({"X-HubSpot-Request-Timestamp": "soon"}), "epoch milliseconds"),
    (lambda h: h.pop("X-HubSpot-Request-Timestamp"), "missing X-HubSpot-Request-Timestamp"),
])
def test_signature_problems_are_401_and_enqueue_nothing(client, config, queue, mutate, reason):
    body, headers = signed_delivery([make_event("contact.creation", 1)], SECRET, config.webhook_url)
    mutate(headers)
    response = client.post(PATH, data=body, headers=headers)
    assert response.status_code == 401
    assert reason in response.json["error"]
    assert queue.count == 0


def test_a_wrong_secret_is_401(client, config, queue):
    assert post(client, config, [make_event("contact.creation", 1)], secret="other").status_code == 401


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'[{"eventId": ' + b"9" * 5000 + b"}]", "not valid JSON"),
    (json.dumps([make_event("contact.creation", 1, eventId=10**30)]).encode(), "eventId"),
    (b'[{"eventId": NaN}]', "not valid JSON"),
    (b'[{"eventId": 1e999}]', "finite"),
    (b'{"eventId": 1}', "non-empty JSON array"),
    (b"[]", "non-empty JSON array"),
    (b"[1, 2]", "shape"),
    (json.dumps([make_event("contact.creation", 1, objectId="12a")]).encode(), "objectId"),
    (json.dumps([{k: v for k, v in make_event("contact.creation", 1).items() if k != "portalId"}]).encode(),
     "portalId"),
    (json.dumps([make_event("deal.propertyChange", 1)]).encode(), "propertyName"),
    (json.dumps([make_event("object.creation", 1)]).encode(), "objectTypeId"),
    (json.dumps([make_event("deal creation!", 1)]).encode(), "subscriptionType"),
    ("[\"\udcff\"]".encode("utf-8", "surrogatepass"), "not valid JSON"),
])
def test_malformed_bodies_are_400_and_enqueue_nothing(client, config, queue, body, reason):
    response = post(client, config, None, body=body)
    assert response.status_code == 400, response.json
    assert reason in response.json["error"]
    assert "Traceback" not in response.get_data(as_text=True)
    assert queue.count == 0


def test_bodies_over_1_mib_are_413_before_any_signature_check(client, queue):
    response = client.post(PATH, data=b"[" + b" " * (1024 * 1024) + b"]",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.is_json
    assert queue.count == 0


def test_redis_down_is_503_so_hubspot_retries(config):
    down = Config(**{**config.__dict__, "redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    client = create_app(down).test_client()
    response = post(client, config, [make_event("contact.creation", 1)])
    assert response.status_code == 503
    assert client.get("/healthz").status_code == 503


def test_healthz_and_unknown_routes_answer_json(client):
    assert client.get("/healthz").json == {"status": "ok", "redis": "ok"}  # queue figures: token only
    response = client.get("/nope")
    assert response.status_code == 404 and response.is_json
    assert client.get(PATH).status_code == 405


def test_without_a_public_url_the_request_url_is_signed(config, redis, queue):
    local = Config(**{**config.__dict__, "webhook_url": None})
    client = create_app(local).test_client()
    body, headers = signed_delivery([make_event("contact.creation", 1)], SECRET, "http://localhost" + PATH)
    assert client.post(PATH, data=body, headers=headers).status_code == 200
    body, headers = signed_delivery([make_event("contact.creation", 2)], SECRET, "https://elsewhere" + PATH)
    assert client.post(PATH, data=body, headers=headers).status_code == 401
