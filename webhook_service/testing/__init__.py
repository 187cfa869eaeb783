"""Helpers for handler authors, the same ones hubhook's own tests use.

- ``FakeHubSpot``: HubSpot's CRM API served over real HTTP on a free port, with HubSpot's shapes and
  refusals (unknown properties, bad numbers, duplicate contact emails, spent daily limits...).
- ``make_event`` / ``signed_delivery`` / ``post_delivery``: deliveries signed exactly as HubSpot signs.
- ``run_handlers``: a Router's handlers run synchronously on a change, enriched from a FakeHubSpot.
- ``handlers``: ``run_handlers``, which calls the worker's own grouping, matching and Event building.
- ``fake_hubspot/``: the fake API (its package docstring maps it).
- The pytest plugin (``webhook_service.testing.pytest_plugin``, loaded automatically) wraps them in
  fixtures: ``hubspot_fake``, ``signed_delivery``, ``run_handlers``.
"""
from webhook_service.testing.deliveries import make_event, post_delivery, signed_delivery
from webhook_service.testing.fake_hubspot.auth import OAuthApp
from webhook_service.testing.fake_hubspot.server import FakeHubSpot
from webhook_service.testing.handlers import HandlerRun, run_handlers

__all__ = ["FakeHubSpot", "HandlerRun", "OAuthApp", "make_event", "post_delivery", "run_handlers",
           "signed_delivery"]
