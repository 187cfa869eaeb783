"""HubSpot request signatures: pure functions over raw bytes, no Flask.

``verify()`` raises SignatureError with one precise message or returns the version that matched; it
never returns False. ``sign()`` is its twin, used by tests, ``hubhook send-test-event`` and the demo.
Algorithms and the v3 URI decode table: https://developers.hubspot.com/docs/api/webhooks/validating-requests.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Collection, Mapping, Sequence

from webhook_service.errors import SignatureError

MAX_SKEW_SECONDS = 300

# HubSpot decodes exactly these escapes before signing v3 (its table, URL above); case-insensitive, as
# percent-encoding is.
_V3_DECODE = {"3A": ":", "2F": "/", "3F": "?", "40": "@", "21": "!", "24": "$", "27": "'",
              "28": "(", "29": ")", "2A": "*", "2C": ",", "3B": ";"}
_ESCAPE = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


def normalize_v3_uri(uri: str) -> str:
    """Decode the characters HubSpot's v3 algorithm decodes and leave every other escape alone."""
    return _ESCAPE.sub(lambda m: _V3_DECODE[m.group(1).upper()], uri)


def sign(version: str, secret: str, body: bytes, *, method: str = "POST", uri: str = "",
         timestamp: str | int | None = None) -> str:
    """The signature HubSpot would send for this request, in the header's own encoding."""
    if version == "v1":
        return hashlib.sha256(secret.encode() + body).hexdigest()
    if version == "v2":
        return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()
    if version == "v3":
        if timestamp is None:
            raise ValueError("v3 signatures need a timestamp (epoch milliseconds)")
        message = method.encode() + normalize_v3_uri(uri).encode() + body + str(timestamp).encode()
        digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()
    raise ValueError(f"unknown signature version {version!r}; use v1, v2 or v3")


def signed_headers(secret: str, body: bytes, uri: str, *, method: str = "POST",
                   now_ms: int | None = None) -> dict[str, str]:
    """Headers of a delivery signed the way HubSpot signs one: v3 plus the older v1 for compatibility."""
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign("v3", secret, body, method=method, uri=uri, timestamp=timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature": sign("v1", secret, body),
        "X-HubSpot-Signature-Version": "v1",
    }


def _matches(expected: str, received: str) -> bool:
    return hmac.compare_digest(expected.encode(), received.encode())


#: What ``verify`` accepts unless told otherwise: v3 when its header is present, else v1/v2.
ALL_VERSIONS = ("v3", "v2", "v1")
#: The setting that chooses them, named in the errors it causes.
VERSIONS_SETTING = "HUBHOOK_SIGNATURE_VERSIONS"


def verify(headers: Mapping[str, str], body: bytes, *, secrets: Sequence[str], method: str, uri: str,
           now: float | None = None, max_skew: int = MAX_SKEW_SECONDS,
           versions: Collection[str] = ALL_VERSIONS) -> str:
    """Check a delivery against every configured secret; return "v1", "v2" or "v3", or raise.

    v3 is checked when its header is present (and accepted), else v1/v2 as
    ``X-HubSpot-Signature-Version`` says, when ``versions`` accepts that version. v1 and v2 carry no
    timestamp, so a captured v1/v2 delivery can be posted again at any time: ``versions=("v3",)``
    refuses them (the receiver bounds such replays anyway, by dropping events older than its dedupe
    window). ``headers`` must look names up case-insensitively (Werkzeug's and requests' headers do).
    """
    if not secrets:
        raise SignatureError("no client secret is configured: set HUBSPOT_CLIENT_SECRET")
    v3 = headers.get("X-HubSpot-Signature-v3")
    if v3 is not None and "v3" in versions:
        timestamp = headers.get("X-HubSpot-Request-Timestamp")
        _check_timestamp(timestamp, now if now is not None else time.time(), max_skew)
        received = v3.strip().replace(" ", "+")  # a proxy may turn '+' into ' ' (reported by HubSpot users)
        if any(_matches(sign("v3", s, body, method=method, uri=uri, timestamp=timestamp), received)
               for s in secrets):
            return "v3"
        raise SignatureError("X-HubSpot-Signature-v3 does not match: check HUBSPOT_CLIENT_SECRET and "
                             "HUBHOOK_WEBHOOK_URL (the exact public URL HubSpot posts to)")
    legacy = headers.get("X-HubSpot-Signature")
    if legacy is None:
        raise SignatureError("missing X-HubSpot-Signature-v3 and X-HubSpot-Signature headers")
    version = (headers.get("X-HubSpot-Signature-Version") or "v1").strip().lower()
    if version not in ("v1", "v2"):
        raise SignatureError(f"unsupported X-HubSpot-Signature-Version {version[:10]!r}")
    if version not in versions:
        # Private-app webhooks are documented with X-HubSpot-Signature (v1) only:
        # https://developers.hubspot.com/docs/apps/legacy-apps/private-apps/create-and-edit-webhook-subscriptions-in-private-apps
        raise SignatureError(f"a {version} signature without X-HubSpot-Signature-v3 is refused: "
                             f"{VERSIONS_SETTING}={','.join(versions)}; for a private app, whose webhooks "
                             f"carry only X-HubSpot-Signature, set {VERSIONS_SETTING}=v3,{version}")
    received = legacy.strip().lower()
    if any(_matches(sign(version, s, body, method=method, uri=uri), received) for s in secrets):
        return version
    raise SignatureError(f"X-HubSpot-Signature ({version}) does not match: check HUBSPOT_CLIENT_SECRET")


def _check_timestamp(timestamp: str | None, now: float, max_skew: int) -> None:
    if timestamp is None:
        raise SignatureError("missing X-HubSpot-Request-Timestamp header")
    digits = timestamp.strip()
    # isascii(): str.isdigit() also accepts '²' (a latin-1 header byte), which int() then rejects: a 500
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 15:
        raise SignatureError("X-HubSpot-Request-Timestamp is not epoch milliseconds")
    skew = now - int(timestamp) / 1000
    if skew > max_skew:
        raise SignatureError(f"X-HubSpot-Request-Timestamp is {int(skew)} s old (limit {max_skew} s)")
    if skew < -max_skew:
        raise SignatureError(f"X-HubSpot-Request-Timestamp is {int(-skew)} s in the future (limit {max_skew} s)")
