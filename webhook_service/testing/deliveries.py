"""Build and sign deliveries exactly as HubSpot does, for tests, ``hubhook send-test-event`` and the demo."""
from __future__ import annotations

import itertools
import json
import time
from typing import Any

import requests

from webhook_service.receiver.signature import signed_headers

_event_ids = itertools.count(int(time.time() * 1000) % 10**9)


def make_event(subscription_type: str, object_id: int | str, *, portal_id: int = 62515,
               property: str | None = None, value: str | None = None, event_id: int | None = None,
               occurred_at: int | None = None, attempt: int = 0, subscription_id: int = 1,
               app_id: int = 54321, **extra: Any) -> dict:
    """One event in HubSpot's classic shape (https://developers.hubspot.com/docs/api/webhooks);
    ``extra`` adds or overrides fields."""
    event = {
        "eventId": event_id if event_id is not None else next(_event_ids),
        "subscriptionId": subscription_id,
        "portalId": portal_id,
        "appId": app_id,
        "occurredAt": occurred_at if occurred_at is not None else int(time.time() * 1000),
        "subscriptionType": subscription_type,
        "attemptNumber": attempt,
        "objectId": int(object_id),
        "changeSource": "CRM",
    }
    if property is not None:
        event.update(propertyName=property, propertyValue="" if value is None else str(value))
    event.update(extra)
    return event


def signed_delivery(events: list[dict] | bytes, secret: str, url: str, *,
                    now_ms: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers HubSpot would send to ``url``: v3 signature plus v1 for compatibility."""
    body = events if isinstance(events, bytes) else json.dumps(events, separators=(",", ":")).encode()
    return body, signed_headers(secret, body, url, now_ms=now_ms)


def post_delivery(url: str, events: list[dict] | bytes, secret: str, *, session: requests.Session | None = None,
                  timeout: float = 10.0) -> requests.Response:
    """Sign and POST one delivery to a running receiver."""
    body, headers = signed_delivery(events, secret, url)
    return (session or requests).post(url, data=body, headers=headers, timeout=timeout)
