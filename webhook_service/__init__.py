"""hubhook: HubSpot CRM changes become calls of your own Python functions.

Public API (pinned by tests/test_public_api.py)::

    from webhook_service import Router, Event
"""
from webhook_service.config import Config
from webhook_service.errors import ConfigError, HubhookError, HubSpotAPIError, MissingScopes, PayloadError, RateLimited, RegistrationError, SignatureError, TransientAPIError
from webhook_service.events import Event
from webhook_service.router import Handler, Router

__all__ = [
    "Config",
    "ConfigError",
    "Event",
    "Handler",
    "HubSpotAPIError",
    "HubhookError",
    "MissingScopes",
    "PayloadError",
    "RateLimited",
    "RegistrationError",
    "Router",
    "SignatureError",
    "TransientAPIError",
]
