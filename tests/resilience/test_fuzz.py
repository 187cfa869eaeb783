"""Bad input, fuzzed: hypothesis-generated bodies and headers against the receiver's Flask app.

The HTTP matrix (test_bad_input.py) pins the known rows; this looks for the unknown ones. The Flask
test client is used for speed (thousands of requests), with the app wired to a real Redis exactly as
gunicorn runs it. Header values are drawn from latin-1, the only characters that can arrive in an
HTTP header (WSGI decodes header bytes as latin-1). For every request: never a 5xx, always a JSON
error for a refusal, and a refusal leaves Redis untouched.
"""
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook_service.config import Config
from webhook_service.receiver.app import create_app
from webhook_service.testing import make_event

from .badinput import PUBLIC, v3

pytestmark = pytest.mark.resilience
FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
INT_FIELDS = ("eventId", "subscriptionId", "portalId", "occurredAt", "objectId")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60)


@pytest.fixture
def app(redis_server, redis):
    """The receiver's app on the session Redis (flushed per test), as ``hubhook web`` builds it."""
    config = Config(redis_url=redis_server.url, client_secrets=("fuzz-secret",), webhook_url=PUBLIC)
    return create_app(config)


def footprint(redis) -> tuple[int, int]:
    return redis.dbsize(), redis.llen("rq:queue:hubhook")


def post(app, redis, body: bytes, headers: dict) -> int:
    """POST one delivery; check the invariants every answer must keep; return the status."""
    before = footprint(redis)
    response = app.test_client().post("/webhooks/hubspot", data=body, headers=headers,
                                      base_url="https://hooks.example.com")
    after = footprint(redis)
    assert response.status_code < 500, (response.status_code, response.get_data()[:300], body[:200], headers)
    if response.status_code != 200:
        assert response.is_json and response.get_json()["status"] == response.status_code
        assert after == before, f"a {response.status_code} changed Redis: {before} -> {after}"
    else:
        assert after[1] - before[1] in (0, 1)
    return response.status_code


def signed(body: bytes) -> dict:
    return v3(body, int(time.time() * 1000), secret="fuzz-secret")


@FUZZ
@given(body=st.binary(max_size=2000))
def test_any_bytes_correctly_signed_get_a_4xx_or_2xx(app, redis, body):
    assert post(app, redis, body, signed(body)) in (200, 400)


@FUZZ
@given(data=json_values)
def test_any_json_correctly_signed_is_accepted_or_refused_with_400(app, redis, data):
    body = json.dumps(data).encode()
    assert post(app, redis, body, signed(body)) in (200, 400)


@FUZZ
@given(field=st.sampled_from(INT_FIELDS), value=json_values.filter(lambda v: type(v) is not int))
def test_an_event_whose_id_is_not_an_integer_is_refused(app, redis, field, value):
    event = {**make_event("contact.creation", 1), field: value}
    body = json.dumps([event]).encode()
    assert post(app, redis, body, signed(body)) == 400


@FUZZ
@given(extra=st.dictionaries(st.text(max_size=15), json_values, max_size=4),
       drop=st.sets(st.sampled_from(["attemptNumber", "appId", "changeSource", "propertyValue"])))
def test_a_valid_event_with_extra_or_missing_optional_fields_is_accepted(app, redis, extra, drop):
    event = make_event("contact.propertyChange", 2, property="email", value="a@b.c")
    event = {**{k: v for k, v in event.items() if k not in drop},
             **{k: v for k, v in extra.items() if k not in event}}
    body = json.dumps([event]).encode()
    assert post(app, redis, body, signed(body)) == 200


@FUZZ
@given(signature=header_text, timestamp=header_text | st.integers(-2**70, 2**70).map(str),
       version=header_text, content_type=header_text, legacy=header_text)
def test_fuzzed_signature_headers_are_refused_with_401(app, redis, signature, timestamp, version, content_type,
                                                       legacy):
    body = json.dumps([make_event("contact.creation", 3)]).encode()
    for headers in ({"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp,
                     "Content-Type": content_type},
                    {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(int(time.time() * 1000))},
                    {"X-HubSpot-Signature": legacy, "X-HubSpot-Signature-Version": version}):
        assert post(app, redis, body, headers) == 401
