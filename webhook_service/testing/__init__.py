"""Helpers for handler authors, the same ones hubhook's own tests use.

- ``FakeHubSpot``: HubSpot's CRM API served over real HTTP on a free port, with HubSpot's shapes.
- ``make_event`` / ``signed_delivery`` / ``post_delivery``: deliveries signed exactly as HubSpot signs.
"""
from .deliveries import make_event, post_delivery, signed_delivery
from .fake_hubspot import FakeHubSpot

__all__ = ["FakeHubSpot", "make_event", "post_delivery", "signed_delivery"]
