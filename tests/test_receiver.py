"""The receiver: verify, validate, drop redeliveries, enqueue one job per delivery, answer precisely."""
import json
import time
from pathlib import Path

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from webhook_service.config import Config
from webhook_service.errors import ConfigError
from webhook_service.receiver.app import create_app
from webhook_service.testing import make_event, signed_delivery

from .conftest import METRICS_BEARER, SECRET, free_port, queued_jobs

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
    (job,) = queued_jobs(queue.connection, queue)
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
    assert len(queued_jobs(queue.connection, queue)) == 2
    # And a delivery that is all duplicates enqueues nothing
    assert post(client, config, retry).json["enqueued"] == 0
    assert len(queued_jobs(queue.connection, queue)) == 2


def test_same_event_id_for_different_changes_is_not_a_duplicate(client, config, queue):
    first = make_event("contact.propertyChange", 1, property="email", value="a@x", event_id=5)
    second = make_event("contact.propertyChange", 1, property="email", value="b@x", event_id=5)
    assert post(client, config, [first, second]).json["enqueued"] == 2


def test_the_old_event_type_key_and_official_samples_are_accepted(client, config, queue):
    for sample in ("webhook_v3_docs_example_contact_propertyChange_and_creation.json",
                   "webhook_sensitive_data_contact_propertyChange_example.json"):
        events = json.loads((Path(__file__).parent / "data" / sample).read_bytes())
        # the samples' own dates are years old: an event that old is dropped as a replay (below)
        body = json.dumps([{**e, "occurredAt": int(time.time() * 1000)} for e in events]).encode()
        response = post(client, config, None, body=body)
        assert response.status_code == 200, response.json
    types = [e["subscriptionType"] for job in queued_jobs(queue.connection, queue) for e in job.args[0]]
    assert types == ["contact.propertyChange", "contact.creation", "contact.propertyChange"]


def test_unknown_extra_fields_are_kept(client, config, queue):
    event = make_event("object.creation", 4, objectTypeId="2-123", isSensitive=False, brandNew={"x": 1})
    assert post(client, config, [event]).status_code == 200
    assert queued_jobs(queue.connection, queue)[0].args[0][0]["brandNew"] == {"x": 1}


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


DAY_MS = 24 * 3600 * 1000


def test_events_older_than_the_dedupe_window_are_never_enqueued(client, config, queue, caplog):
    # Given a delivery holding one change from just now and one from longer ago than the digests are kept
    now_ms = int(time.time() * 1000)
    fresh = make_event("contact.creation", 1, occurred_at=now_ms)
    stale = make_event("contact.creation", 2, occurred_at=now_ms - config.dedupe_ttl * 1000 - 60_000)
    # When it arrives, correctly signed
    dropped_before = stale_metric(client)
    with caplog.at_level("INFO", logger="hubhook.receiver"):
        response = post(client, config, [fresh, stale])
    # Then it is acknowledged, the old change is counted and dropped, the recent one enqueued
    assert response.status_code == 200, response.json
    assert (response.json["received"], response.json["enqueued"], response.json["stale"]) == (2, 1, 1)
    assert [e["objectId"] for job in queued_jobs(queue.connection, queue) for e in job.args[0]] == [1]
    # in one log line, and in a metric
    [line] = [r for r in caplog.records if r.name == "hubhook.receiver"]
    assert line.levelname == "WARNING" and line.hubhook["stale"] == 1
    assert stale_metric(client) == dropped_before + 1


def stale_metric(client) -> float:
    text = client.get("/metrics", headers=METRICS_BEARER).get_data(as_text=True)
    return float(next(line.split()[1] for line in text.splitlines()
                      if line.startswith('hubhook_events_dropped_total{reason="stale"} ')))


def test_a_captured_v1_delivery_replayed_after_the_window_runs_nothing(client, config, queue):
    # Given a delivery captured three days ago: its v1 signature (no timestamp) is still valid
    events = [make_event("deal.propertyChange", 7, property="dealstage", value="won",
                         occurred_at=int(time.time() * 1000) - 3 * DAY_MS)]
    body, headers = signed_delivery(events, SECRET, config.webhook_url)
    # When an attacker strips the v3 headers and posts it again
    del headers["X-HubSpot-Signature-v3"], headers["X-HubSpot-Request-Timestamp"]
    response = client.post(PATH, data=body, headers=headers)
    # Then it is acknowledged (HubSpot must not retry it) but nothing is enqueued
    assert response.status_code == 200, response.json
    assert (response.json["enqueued"], response.json["stale"], response.json["job"]) == (0, 1, None)
    assert queue.count == 0


def test_strict_signature_versions_refuse_v1_and_say_what_to_change(config, redis, queue):
    # Given a receiver configured to accept v3 signatures only (OAuth and project apps)
    strict = Config(**{**config.__dict__, "signature_versions": ("v3",)})
    client = create_app(strict).test_client()
    body, headers = signed_delivery([make_event("contact.creation", 1)], SECRET, config.webhook_url)
    v3_headers = ("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp")
    v1_only = {k: v for k, v in headers.items() if k not in v3_headers}
    # When a delivery carries only a (valid) v1 signature
    response = client.post(PATH, data=body, headers=v1_only)
    # Then it is refused, and the error names the setting a private app needs
    assert response.status_code == 401
    assert "HUBHOOK_SIGNATURE_VERSIONS=v3,v1" in response.json["error"]
    assert queue.count == 0
    # while v3 deliveries are accepted, and the default still accepts v1 alone
    assert client.post(PATH, data=body, headers=headers).status_code == 200
    body, headers = signed_delivery([make_event("contact.creation", 2)], SECRET, config.webhook_url)
    del headers["X-HubSpot-Signature-v3"]
    assert create_app(config).test_client().post(PATH, data=body, headers=headers).status_code == 200


def test_without_a_raw_uri_from_the_server_the_raw_query_string_is_signed(config, redis, queue):
    # Given a WSGI server that does not pass the raw request target on (no RAW_URI, no REQUEST_URI)
    client = create_app(Config(**{**config.__dict__, "webhook_url": None})).test_client()
    no_raw_uri = {"RAW_URI": "", "REQUEST_URI": ""}
    target = PATH + "?e=%E2%9C%93&s=%7E%5B%5D&src=hub%3Aspot"
    # When HubSpot signs a query with escapes Werkzeug would decode
    body, headers = signed_delivery([make_event("contact.creation", 1)], SECRET, "http://localhost" + target)
    response = client.post(target, data=body, headers=headers, environ_overrides=no_raw_uri)
    # Then the query string, which WSGI keeps raw, is what is verified
    assert response.status_code == 200, response.json
    # and a trailing "?" the server could not report is the only thing lost: the URI without it verifies
    body, headers = signed_delivery([make_event("contact.creation", 2)], SECRET, "http://localhost" + PATH)
    assert client.post(PATH + "?", data=body, headers=headers, environ_overrides=no_raw_uri).status_code == 200


def nested_body(depth: int, kind: str = "array") -> bytes:
    """One valid contact.creation whose extra field ``extra`` nests ``depth`` arrays (or objects) deep."""
    value = "[" * depth + "]" * depth if kind == "array" else '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)
    event = make_event("contact.creation", depth)
    return json.dumps([{**event, "extra": "X"}]).replace('"X"', value).encode()


def deepest_parse() -> int:
    """The deepest array nesting Python's JSON parser accepts at this point of the stack."""
    low, high = 1, 100_000
    while low < high:
        middle = (low + high + 1) // 2
        try:
            json.loads("[" * middle + "]" * middle)
            low = middle
        except RecursionError:
            high = middle - 1
    return low


def test_values_nested_just_under_the_parser_limit_are_400_and_the_receiver_keeps_serving(client, config,
                                                                                         queue):
    # Given signed deliveries whose extra field nests from 40 levels under the parser's limit up to it
    # (these parsed, then failed when the job was serialized: a 500)
    limit = deepest_parse()
    statuses = {post(client, config, None, body=nested_body(depth)).status_code
                for depth in range(limit - 40, limit + 1)}
    # Then every one is refused as malformed, never with a 5xx, and nothing is enqueued
    assert statuses == {400}
    assert queue.count == 0
    # And the bound is exact (arrays or objects): 32 levels are accepted, 33 are not
    assert post(client, config, None, body=nested_body(32)).status_code == 200
    assert post(client, config, None, body=nested_body(32, "object")).status_code == 200
    for deeper in (nested_body(33), nested_body(33, "object")):
        response = post(client, config, None, body=deeper)
        assert response.status_code == 400 and "at most 32 arrays or objects deep" in response.json["error"]
    # And the receiver keeps serving
    assert post(client, config, [make_event("contact.creation", 1)]).status_code == 200
    assert len(queued_jobs(queue.connection, queue)) == 3


def test_more_events_than_hubspot_sends_in_one_request_are_413(client, config, queue):
    # Given HubSpot's documented maximum of 100 events a request (the default cap)
    events = [make_event("contact.creation", i) for i in range(1, 102)]
    # When a signed delivery holds 101 events
    response = post(client, config, events)
    # Then it is refused as too large, with the setting that raises the cap, and nothing is enqueued
    assert response.status_code == 413
    error = response.json["error"]
    assert "at most 100" in error and "HUBHOOK_MAX_EVENTS_PER_DELIVERY" in error
    assert queue.count == 0
    # And 100 events are accepted
    assert post(client, config, events[:100]).json["enqueued"] == 100


def test_the_event_cap_is_a_setting(config, queue):
    # Given HUBHOOK_MAX_EVENTS_PER_DELIVERY=150
    raised = Config.from_env({"HUBHOOK_MAX_EVENTS_PER_DELIVERY": "150", "REDIS_URL": config.redis_url})
    assert raised.max_events_per_delivery == 150
    client = create_app(Config(**{**config.__dict__, "max_events_per_delivery": 150})).test_client()
    # Then 101 events are accepted, 151 are not
    assert post(client, config, [make_event("contact.creation", i) for i in range(1, 102)]).status_code == 200
    assert post(client, config, [make_event("contact.creation", i) for i in range(1, 152)]).status_code == 413
    # And 0 is refused at start, with what to set
    with pytest.raises(ConfigError, match="HUBHOOK_MAX_EVENTS_PER_DELIVERY must be a whole number >= 1"):
        Config.from_env({"HUBHOOK_MAX_EVENTS_PER_DELIVERY": "0"})


def test_a_delivery_of_only_malformed_object_types_is_acknowledged_and_enqueues_nothing(client, config,
                                                                                          queue):
    # Given a signed delivery whose only event names a type no API path or Redis key may hold
    event = make_event("object.creation", 1, objectTypeId="../../oauth")
    # When it arrives
    response = post(client, config, [event])
    # Then it is acknowledged (HubSpot must not retry it) and nothing is enqueued
    assert response.status_code == 200 and response.json["enqueued"] == 0
    assert queue.count == 0
