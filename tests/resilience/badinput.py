"""The bad-input catalogue as data: one Row per request and the status
the receiver's contract (docs/receiver.md) promises for it.

Kept apart from the test so the rows read as a table. Every body is signed correctly unless the row
is about the signature, so each row exercises exactly one defect. The receiver runs behind a
TLS-terminating proxy in production, so rows sign the configured public URL, not the loopback one.
"""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field

from webhook_service.receiver.signature import sign
from webhook_service.testing import make_event

from ..conftest import SECRET

PUBLIC = "https://hooks.example.com/webhooks/hubspot"
SIG, TS, JSON = "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp", "application/json"


@dataclass
class Row:
    """One request of the matrix and the status it must get."""

    name: str
    body: bytes
    headers: dict
    expected: int
    query: str = ""
    method: str = "POST"
    path: str = "/webhooks/hubspot"
    events: list = field(default_factory=list)   # events an accepted row must hand to the workers


def v3(body: bytes, now_ms: int, *, secret: str = SECRET, ts: str | None = None, uri: str = PUBLIC) -> dict:
    """Headers HubSpot would send for ``body`` (v3 only, so each row tests one signature scheme)."""
    timestamp = ts if ts is not None else str(now_ms)
    return {SIG: sign("v3", secret, body, uri=uri, timestamp=timestamp), TS: timestamp, "Content-Type": JSON}


def encode(events) -> bytes:
    return json.dumps(events, separators=(",", ":"), ensure_ascii=False).encode()


def rows(now_ms: int, internal_url: str) -> list[Row]:
    """Every row that applies to an HTTP receiver, with fresh events for the ones that are accepted."""
    ids = iter(range(900_001, 901_000))

    def event(**extra) -> dict:
        return make_event("contact.propertyChange", next(ids), property="email", value="x", **extra)

    def accepted(name: str, events: list[dict] | None = None, *, edit=None, **kw) -> Row:
        """A row the receiver must take: ``edit`` rewrites the encoded body (its events stay the same)."""
        events = events if events is not None else [event()]
        body = edit(encode(events)) if edit else encode(events)
        return Row(name, body, v3(body, now_ms, **kw), 200, events=events)

    def signed(name: str, body: bytes, expected: int, **kw) -> Row:
        return Row(name, body, v3(body, now_ms, **kw), expected)

    good = encode([event()])
    base = {k: v for k, v in event().items() if k != "objectId"}
    table = [
        Row("no signature headers at all", good, {"Content-Type": JSON}, 401),
        Row("v3 signature without timestamp", good, {k: v for k, v in v3(good, now_ms).items() if k != TS}, 401),
        Row("empty v3 signature", good, {**v3(good, now_ms), SIG: ""}, 401),
        Row("empty timestamp", good, {**v3(good, now_ms), TS: ""}, 401),
        Row("wrong signature", good, {**v3(good, now_ms), SIG: base64.b64encode(os.urandom(32)).decode()}, 401),
        Row("tampered body", good.replace(b'"x"', b'"y"'), v3(good, now_ms), 401),
        Row("wrong secret", good, v3(good, now_ms, secret="someone-elses-secret"), 401),
        Row("signed for the internal URL, not the public one", good, v3(good, now_ms, uri=internal_url), 401),
        Row("unknown legacy signature version", good, {"X-HubSpot-Signature": "ab", "X-HubSpot-Signature-Version": "v9",
                                                       "Content-Type": JSON}, 401),
        signed("timestamp 301 s old", good, 401, ts=str(now_ms - 301_000)),
        signed("timestamp 301 s ahead", good, 401, ts=str(now_ms + 301_000)),
        accepted("timestamp 299 s old", ts=str(now_ms - 299_000)),
        accepted("timestamp 299 s ahead", ts=str(now_ms + 299_000)),
        *[signed(f"timestamp {t!r}", good, 401, ts=t) for t in ("hello", "1e400", "-1", "99999999999999999999",
                                                                   f"{now_ms}.5", "0x1", "NaN")],
        Row("timestamp of latin-1 superscript digits", good, {**v3(good, now_ms, ts="\xb9\xb2\xb3"),
                                                              TS: b"\xb9\xb2\xb3"}, 401),
        Row("oversized header (9,000 bytes)", good, {**v3(good, now_ms), "X-Padding": "a" * 9000}, 431),
        Row("120 headers", good, {**v3(good, now_ms), **{f"X-H{i}": "1" for i in range(120)}}, 431),
        Row("5,000-character URL", good, v3(good, now_ms), 414, query="?q=" + "a" * 5000),
        signed("deep nesting", b"[" * 100_000 + b"]" * 100_000, 400),
        signed("5,000-digit integer", b'[{"objectId":' + b"1" * 5000 + b"}]", 400),
        signed("id beyond 2**63", encode([{**base, "objectId": 2**64}]), 400),
        signed("NaN", encode([{**base, "objectId": 1}]).replace(b'"objectId":1', b'"objectId":NaN'), 400),
        signed("object instead of an array", encode(event()), 400),
        signed("empty array", b"[]", 400),
        signed("null", b"null", 400),
        signed("array of numbers", b"[1,2]", 400),
        signed("event without objectId", encode([base]), 400),
        signed("objectId as a string", encode([{**base, "objectId": "123"}]), 400),
        signed("objectId true", encode([{**base, "objectId": True}]), 400),
        signed("propertyChange without propertyName", encode([{**event(), "propertyName": None}]), 400),
        signed("invalid UTF-8", good.replace(b'"x"', b'"\xff\xfe"'), 400),
        signed("UTF-8 byte order mark", b"\xef\xbb\xbf" + good, 400),
        signed("truncated JSON", good[:-3], 400),
        signed("101 events (HubSpot sends at most 100)", encode([event() for _ in range(101)]), 413),
        accepted("duplicate keys: the last value wins",
                 edit=lambda b: b.replace(b'"changeSource"', b'"portalId":1,"changeSource"')),
        accepted("non-ASCII value, raw UTF-8", [event(propertyValue="Yllä 🎉")]),
        accepted("non-ASCII value, \\u escapes", edit=lambda b: b[:-2] + b',"note":"Yll\\u00e4"}]'),
        accepted("lone surrogate escape", edit=lambda b: b[:-2] + b',"note":"\\ud800"}]'),
        accepted("unknown subscription type", [make_event("zzz.creation", next(ids))]),
        accepted("generic object event of an unknown type id", [make_event("object.creation", next(ids),
                                                                           objectTypeId="9-999")]),
        accepted("proxy turned + into spaces in the signature"),
        accepted("Content-Type text/plain"),
        accepted("Content-Type form-urlencoded (must not be parsed as a form)"),
        accepted("no Content-Type"),
        Row("form-urlencoded with a wrong signature", good, {**v3(good, now_ms), SIG: "bm9wZQ==",
                                                             "Content-Type": "application/x-www-form-urlencoded"}, 401),
        accepted("query string signed as sent (%2F)"),
        accepted("query string signed decoded (/)"),
        accepted("query string with lower-case %2f"),
        Row("query string not signed", good, v3(good, now_ms), 401, query="?t=a%2Fb"),
        Row("GET", b"", {}, 405, method="GET"),
        Row("unknown path", good, v3(good, now_ms), 404, path="/webhooks/other"),
    ]
    by_name = {r.name: r for r in table}
    plus = by_name["proxy turned + into spaces in the signature"]
    plus.headers = v3(plus.body, now_ms)
    while "+" not in plus.headers[SIG][1:-1] or plus.headers[SIG][0] == "+":  # a '+' inside to mangle
        plus.events[0]["propertyValue"] += "x"
        plus.body = encode(plus.events)
        plus.headers = v3(plus.body, now_ms)
    plus.headers[SIG] = plus.headers[SIG].replace("+", " ")
    by_name["Content-Type text/plain"].headers["Content-Type"] = "text/plain"
    by_name["Content-Type form-urlencoded (must not be parsed as a form)"].headers["Content-Type"] = \
        "application/x-www-form-urlencoded"
    del by_name["no Content-Type"].headers["Content-Type"]
    for name, query, signed_as in (("query string signed as sent (%2F)", "?t=a%2Fb", "?t=a%2Fb"),
                                   ("query string signed decoded (/)", "?t=a%2Fb", "?t=a/b"),
                                   ("query string with lower-case %2f", "?t=a%2fb", "?t=a%2fb")):
        row = by_name[name]
        row.query, row.headers = query, v3(row.body, now_ms, uri=PUBLIC + signed_as)
    return table
