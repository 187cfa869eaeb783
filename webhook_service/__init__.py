"""hubhook: HubSpot CRM changes become calls of your own Python functions.

Public API (pinned by tests/test_public_api.py)::

    from webhook_service import Router, Event
"""
from .config import Config
from .errors import (ConfigError, HubhookError, HubSpotAPIError, MissingScopes, PayloadError, RateLimited,
                     RegistrationError, SignatureError, TransientAPIError)
from .events import Event
from .router import Handler, Router

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
