"""The URI a v3 signature covers, end to end: a real `hubhook web` (gunicorn), the exact request line.

HubSpot signs the target URL as registered, with the escapes it sends, decoding only the twelve escapes
of its table (https://developers.hubspot.com/docs/api/webhooks/validating-requests). Each target URL
below is posted with http.client, which sends the request line byte for byte, and signed by a signer
written here from the documentation alone (not hubhook's), in each of three set-ups: no
HUBHOOK_WEBHOOK_URL (the URI is rebuilt from the request), HUBHOOK_WEBHOOK_URL set to the registered
URL query included, and set to the registered URL without its query (the request's query is added).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from webhook_service.testing import make_event

from .conftest import ROOT, SECRET, free_port
from .test_processes import HUBHOOK, spawn, wait_until

pytestmark = pytest.mark.skipif(not Path(HUBHOOK).exists(),
                                reason="hubhook is not installed in this environment")

ROUTE = "/webhooks/hubspot"
#: Request targets (path and query, as sent on the request line), by what they exercise.
TARGETS = {
    "plain": ROUTE,
    "table-escapes-upper": ROUTE + "?a=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&src=hub%3Aspot%2Cx",
    "table-escapes-lower": ROUTE + "?a=%3a%2f%3f%40%21%24%27%28%29%2a%2c%3b&src=hub%3aspot%2cx",
    "kept-escapes": ROUTE + "?y=a%20b&amp=%26&eq=%3D&plus=%2B&p=a+b",
    "non-ascii-escapes": ROUTE + "?e=%E2%9C%93&u=%c3%bc",
    "other-escapes-upper": ROUTE + "?s=%7E%5B%5D%22%3C%3E%7C%5C%5E%7B%7D",
    "other-escapes-lower": ROUTE + "?s=%7e%5b%5d%22%3c%3e%7c%5c%5e%7b%7d",
    "unescaped-legal": ROUTE + "?k=a:b/c?d@e!f$g'h(i)j*k,l;m=n~o-p._&q=&r",
    "trailing-question-mark": ROUTE + "?",
    "path-escapes": "/webhooks%2fhub%73pot",
    "path-and-query-escapes": "/%77ebhooks/hubspo%74?e=%E2%9C%93&t=%7E",
}
IDS = list(TARGETS)

# -- an independent HubSpot-style v3 signer ---------------------------------------------------
#: The escapes HubSpot decodes before signing, in either hex case; every other escape is signed as is.
HUBSPOT_DECODES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
                   "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, method + uri + body + timestamp)), the URI decoded per HubSpot's table."""
    for escape, character in HUBSPOT_DECODES.items():
        uri = uri.replace(escape, character).replace(escape.lower(), character)
    message = method.encode() + uri.encode("utf-8") + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


# -- servers ------------------------------------------------------------------------------------
#: Where HubSpot posts in production (a proxy in front): what HUBHOOK_WEBHOOK_URL names.
PUBLIC = "https://hooks.example.com"


class Server:
    """One `hubhook web` on its own port, with ``webhook_url`` as HUBHOOK_WEBHOOK_URL (None: unset)."""

    def __init__(self, base_env: dict[str, str], webhook_url: str | None) -> None:
        self.port, self.webhook_url = free_port(), webhook_url
        env = {**base_env, "PORT": str(self.port), "WEB_CONCURRENCY": "1"}
        if webhook_url:
            env["HUBHOOK_WEBHOOK_URL"] = webhook_url
        self.process = spawn("web", "--threads", "2", env=env)

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def servers(redis_server) -> Iterator[dict[str, Server]]:
    """Started together, once for the module: one without HUBHOOK_WEBHOOK_URL, one set to the route
    without a query, and one per target set to that target's registered URL (one setting a server)."""
    env = {key: value for key, value in os.environ.items() if key != "HUBHOOK_WEBHOOK_URL"}
    env.update(REDIS_URL=redis_server.url, HUBSPOT_CLIENT_SECRET=SECRET, PYTHONPATH=str(ROOT),
               HUBHOOK_LOG_LEVEL="WARNING")
    started = {"unset": Server(env, None)}
    started.update({f"registered:{name}": Server(env, PUBLIC + target) for name, target in TARGETS.items()})
    started["without-query"] = started["registered:plain"]  # the same setting: PUBLIC + ROUTE
    try:
        for server in started.values():
            wait_until(server.healthy, 90, f"hubhook web on port {server.port} to answer /healthz")
        yield started
    finally:
        for server in {id(s): s for s in started.values()}.values():
            server.stop()


def route(servers: dict[str, Server], mode: str, name: str) -> tuple[Server, str]:
    """The server a delivery to target ``name`` reaches in ``mode``, and the URI HubSpot signs."""
    target = TARGETS[name]
    if mode == "unset":  # the receiver sees HubSpot's Host header and request line
        server = servers["unset"]
        return server, f"http://127.0.0.1:{server.port}{target}"
    if mode == "without-query":  # HUBHOOK_WEBHOOK_URL has no query; HubSpot's URL has the target's
        return servers["without-query"], PUBLIC + target
    return servers[f"registered:{name}"], PUBLIC + target


MODES = [(mode, name) for mode in ("unset", "registered", "without-query") for name in TARGETS
         if mode != "without-query" or TARGETS[name].startswith(ROUTE)]  # that setting names the plain route


def delivery(signed_as: str) -> tuple[bytes, dict[str, str]]:
    """A fresh one-event delivery and HubSpot's headers for it, signed for ``signed_as``."""
    event = make_event("contact.creation", int(time.time() * 1e6) % 10**12)
    body = json.dumps([event], separators=(",", ":")).encode()
    timestamp = str(int(time.time() * 1000))
    return body, {"Content-Type": "application/json",
                  "X-HubSpot-Signature-v3": hubspot_v3(SECRET, "POST", signed_as, body, timestamp),
                  "X-HubSpot-Request-Timestamp": timestamp,
                  "X-HubSpot-Signature": hashlib.sha256(SECRET.encode() + body).hexdigest(),
                  "X-HubSpot-Signature-Version": "v1"}


def post(server: Server, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST with http.client: ``target`` goes on the request line exactly as given, nothing re-encodes it."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def one_byte_changed(text: str) -> str:
    """``text`` with its last byte replaced by another letter."""
    return text[:-1] + ("y" if text.endswith("x") else "x")


@pytest.mark.parametrize("mode, name", MODES, ids=[f"{m}-{n}" for m, n in MODES])
def test_a_genuine_delivery_is_accepted(servers, mode, name):
    # Given a receiver in one of the set-ups, and HubSpot's signature for the URL it posts to
    server, signed_as = route(servers, mode, name)
    body, headers = delivery(signed_as)
    # When the delivery arrives with the target's exact request line
    status, text = post(server, TARGETS[name], body, headers)
    # Then it is verified and enqueued
    assert status == 200, text
    assert json.loads(text)["enqueued"] == 1


@pytest.mark.parametrize("mode, name", MODES, ids=[f"{m}-{n}" for m, n in MODES])
@pytest.mark.parametrize("change", ["signed-uri", "body"])
def test_one_byte_changed_is_refused(servers, mode, name, change):
    # Given a delivery signed for one URI and body
    server, signed_as = route(servers, mode, name)
    body, headers = delivery(one_byte_changed(signed_as) if change == "signed-uri" else signed_as)
    if change == "body":
        # When one byte of the body changes on the way
        body = body.replace(b'"CRM"', b'"CRN"')
    # (or it was signed for a URI one byte away from the one the receiver answers for)
    status, text = post(server, TARGETS[name], body, headers)
    # Then the receiver refuses it
    assert status == 401, text
    assert "X-HubSpot-Signature-v3 does not match" in json.loads(text)["error"]


@pytest.mark.parametrize("name", IDS)
def test_a_request_line_one_byte_away_from_the_signed_one_is_refused(servers, name):
    # Given a receiver that rebuilds the URI from the request, and a delivery signed for one target
    server, signed_as = route(servers, "unset", name)
    body, headers = delivery(signed_as)
    target = TARGETS[name]
    # When the request line differs by one byte (a trailing "?" dropped or added, or the last byte)
    if target.endswith("?"):
        sent = target[:-1]
    elif "?" not in target:
        sent = target + "?"
    else:
        sent = one_byte_changed(target)
    status, text = post(server, sent, body, headers)
    # Then it is refused: the URI signed is the one sent, byte for byte
    assert status == 401, text


def test_send_test_event_signs_the_url_it_sends(servers, redis_server):
    # Given a receiver and a target URL typed with a space and a non-ASCII letter in its query
    server = servers["unset"]
    url = f"http://127.0.0.1:{server.port}{ROUTE}?note=a b&name=\u00fc"
    env = {**os.environ, "REDIS_URL": redis_server.url, "HUBSPOT_CLIENT_SECRET": SECRET}
    env.pop("HUBHOOK_WEBHOOK_URL", None)
    # When a developer sends a test event to it
    command = [HUBHOOK, "send-test-event", "contact.creation", "--object-id", "7", "--url", url]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    # Then requests sends it percent-encoded, and the signature covers that encoding: accepted
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("200 ") and '"enqueued":1' in result.stdout
