"""hubhook's pytest plugin, loaded automatically once hubhook is installed (entry point ``pytest11``).

Fixtures for testing handlers without HubSpot and without Redis:

- ``hubspot_fake``: a FakeHubSpot (HubSpot's CRM API over real HTTP on a free port), fresh per test.
- ``signed_delivery``: ``signed_delivery(events)`` -> (body, headers) signed as HubSpot signs,
  with the fixture's secret and URL (``hubhook_secret``, ``hubhook_webhook_url``).
- ``run_handlers``: ``run_handlers(router, change_or_changes, records=...)`` runs the router's
  matching handlers synchronously on the fake (see ``webhook_service.testing.handlers``).

    def test_stage_changed(run_handlers):
        run = run_handlers(router, make_event("deal.propertyChange", 7, property="dealstage", value="won"),
                           records={"deals": {7: {"dealname": "Big", "dealstage": "won"}}})
        assert run.event("stage_changed").record["properties"]["dealname"] == "Big"

Imports happen inside the fixtures, so projects that never use them pay nothing at collection.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def hubspot_fake() -> Iterator[Any]:
    """A FakeHubSpot started for this test and stopped after it."""
    from webhook_service.testing import FakeHubSpot
    from webhook_service.testing.handlers import TEST_TOKEN

    with FakeHubSpot(tokens={TEST_TOKEN}) as fake:
        yield fake


@pytest.fixture
def hubhook_secret() -> str:
    """The client secret ``signed_delivery`` signs with (override the fixture to change it)."""
    return "hubhook-test-secret"


@pytest.fixture
def hubhook_webhook_url() -> str:
    """The public URL ``signed_delivery`` signs for (override the fixture to change it)."""
    return "https://hooks.example.com/webhooks/hubspot"


@pytest.fixture
def signed_delivery(hubhook_secret: str, hubhook_webhook_url: str) -> Callable[..., tuple[bytes, dict]]:
    """``signed_delivery(events, secret=..., url=...)`` -> (body, headers), as HubSpot would send them."""
    from webhook_service.testing import signed_delivery as sign

    def signed(events: list[dict] | bytes, *, secret: str | None = None, url: str | None = None,
               now_ms: int | None = None) -> tuple[bytes, dict]:
        return sign(events, secret or hubhook_secret, url or hubhook_webhook_url, now_ms=now_ms)
    return signed


@pytest.fixture
def run_handlers(hubspot_fake: Any) -> Callable[..., Any]:
    """``run_handlers(router, changes, records=..., associations=..., ignore_sources=..., raise_errors=True)``."""
    from webhook_service.testing.handlers import run_handlers as run

    def bound(router: Any, changes: Any, **options: Any) -> Any:
        return run(router, changes, hubspot=hubspot_fake, **options)
    return bound
