"""Signature verification: HubSpot's golden vectors, both directions of the clock, rotation, decoding."""
import json
from pathlib import Path

import pytest

from webhook_service.config import Config
from webhook_service.errors import ConfigError, SignatureError
from webhook_service.receiver.signature import normalize_v3_uri, sign, signed_headers, verify

VECTORS = json.loads((Path(__file__).parent / "data" / "signature_test_vectors.json").read_text())["vectors"]
URL = "https://hooks.example.com/webhooks/hubspot"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_golden_vectors_sign_and_verify(vector):
    # Given one of HubSpot's published vectors
    body = vector["request_body"].encode()
    kwargs = {"method": vector.get("http_method", "POST"), "uri": vector.get("http_uri", "")}
    # When we sign its inputs
    signature = sign(vector["version"], vector["client_secret"], body, timestamp=vector.get("timestamp"), **kwargs)
    # Then we get HubSpot's signature, and verify() accepts it with the vector's own clock
    assert signature == vector["expected"]
    if vector["version"] == "v3":
        headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(vector["timestamp"])}
        now = int(vector["timestamp"]) / 1000
    else:
        headers = {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": vector["version"]}
        now = None
    assert verify(headers, body, secrets=["other", vector["client_secret"]], now=now, **kwargs) == vector["version"]


def test_v3_is_preferred_and_any_rotated_secret_matches():
    body = b'[{"a":1}]'
    headers = signed_headers("new-secret", body, URL, now_ms=1_700_000_000_000)
    assert verify(headers, body, secrets=["old-secret", "new-secret"], method="POST", uri=URL,
                  now=1_700_000_000) == "v3"


@pytest.mark.parametrize("skew, message", [(301, "old"), (-301, "future")])
def test_stale_and_future_timestamps_are_rejected(skew, message):
    body = b"[]"
    headers = signed_headers("s", body, URL, now_ms=1_700_000_000_000)
    with pytest.raises(SignatureError, match=message):
        verify(headers, body, secrets=["s"], method="POST", uri=URL, now=1_700_000_000 + skew)


def test_within_skew_is_accepted_both_ways():
    body = b"[]"
    headers = signed_headers("s", body, URL, now_ms=1_700_000_000_000)
    for skew in (-299, 299):
        assert verify(headers, body, secrets=["s"], method="POST", uri=URL, now=1_700_000_000 + skew) == "v3"


@pytest.mark.parametrize("timestamp", ["", "abc", "1e12", "-5", "9" * 40])
def test_non_numeric_timestamps_are_rejected(timestamp):
    headers = {"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": timestamp}
    with pytest.raises(SignatureError, match="epoch milliseconds"):
        verify(headers, b"[]", secrets=["s"], method="POST", uri=URL)


def test_a_tampered_body_fails_with_a_precise_message():
    headers = signed_headers("s", b"[1]", URL)
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers, b"[2]", secrets=["s"], method="POST", uri=URL)


def test_missing_headers_say_which():
    with pytest.raises(SignatureError, match="missing"):
        verify({}, b"[]", secrets=["s"], method="POST", uri=URL)


def test_v3_uri_decoding_follows_hubspots_table_only():
    # Given a URI with escapes HubSpot decodes (%3A, %2c) and ones it keeps (%20, %26)
    uri = "https://h.example.com/hook?a=b%3Ac%2cd&e=f%20g%26h"
    # Then exactly the table's characters are decoded, case-insensitively
    assert normalize_v3_uri(uri) == "https://h.example.com/hook?a=b:c,d&e=f%20g%26h"


def test_a_space_instead_of_plus_in_the_header_still_verifies():
    body = b"[]"
    for now_ms in range(1_700_000_000_000, 1_700_000_000_000 + 200):
        headers = signed_headers("s", body, URL, now_ms=now_ms)
        if "+" in headers["X-HubSpot-Signature-v3"]:
            break
    headers["X-HubSpot-Signature-v3"] = headers["X-HubSpot-Signature-v3"].replace("+", " ")
    assert verify(headers, body, secrets=["s"], method="POST", uri=URL, now=now_ms / 1000) == "v3"


def test_v3_only_refuses_a_legacy_signature_and_names_the_setting():
    # Given a valid v1 signature without the v3 headers
    body = b"[]"
    headers = {k: v for k, v in signed_headers("s", body, URL).items()
               if k not in ("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp")}
    assert verify(headers, body, secrets=["s"], method="POST", uri=URL) == "v1"
    # When only v3 is accepted
    with pytest.raises(SignatureError) as refused:
        verify(headers, body, secrets=["s"], method="POST", uri=URL, versions=("v3",))
    # Then it is refused with the setting a private app must change
    assert "HUBHOOK_SIGNATURE_VERSIONS=v3" in str(refused.value) and "private app" in str(refused.value)
    assert "set HUBHOOK_SIGNATURE_VERSIONS=v3,v1" in str(refused.value)


@pytest.mark.parametrize("value, expected", [(None, ("v3", "v2", "v1")), ("v3", ("v3",)),
                                             (" V3 , v1", ("v3", "v1"))])
def test_signature_versions_setting(value, expected):
    env = {} if value is None else {"HUBHOOK_SIGNATURE_VERSIONS": value}
    assert Config.from_env(env).signature_versions == expected


@pytest.mark.parametrize("value", ["v1", "v3,v4", "sha256"])
def test_signature_versions_setting_says_what_to_write(value):
    with pytest.raises(ConfigError, match=r"HUBHOOK_SIGNATURE_VERSIONS must be v3 .* got"):
        Config.from_env({"HUBHOOK_SIGNATURE_VERSIONS": value})
